"""Running a grid of scenario x model x seed: the runner (:mod:`bench.grid.runner`: checks,
lock, resume, progress), one cell's computation and writes (:mod:`bench.grid.cell`), the
executors that compute cells (:mod:`bench.grid.executors`: ``local``, ``ray`` in
:mod:`bench.grid.on_ray`), the run folder's identity checks (:mod:`bench.grid.folder`), its
lock (:mod:`bench.grid.lock`), the progress board (:mod:`bench.grid.progress`) and the
longest-first order of parallel cells (:mod:`bench.grid.schedule`)."""
