"""Run a preset's grid of scenario x model x seed into result records.

Each cell: build the scenario's data for the seed -> create and fit the model -> evaluate the
metrics -> write the cell's artefacts and records (:mod:`bench.grid.cell`). Finished cells are
skipped (resume never recomputes a finished cell); a cell that raises is recorded as failed with
its error and the grid goes on, and is retried by the next run of the same grid (unless
``keep_failed``).

The executors (:mod:`bench.grid.executors`) compute the cells: ``local`` (default), one after
another in this process, and ``ray`` (:mod:`bench.grid.on_ray`), one Ray task per cell on this
machine or a cluster. They share everything else here: the input checks, the run lock, the
same-run check, resume, the writes (by this process only) and the progress bar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import records
from bench.grid.cell import Cell, grid_cells
from bench.grid.executors import EXECUTORS, default_options
from bench.grid.folder import check_same_run, check_writable, remove_stale_parts, write_run_info
from bench.grid.lock import run_lock
from bench.grid.progress import CellProgress, stderr_line
from bench.grid.schedule import expected_cost, finished_walls, longest_first
from bench.presets import Preset
from bench.presets.checks import check_preset


@dataclass(frozen=True)
class RunSummary:
    """What a run did with each cell of the grid.

    ``finished``: computed now; ``skipped``: finished before; ``failed``: failed now;
    ``kept_failed``: failed before and not retried (``keep_failed=True``).
    """

    run_dir: Path
    finished: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: tuple[str, ...]
    kept_failed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every cell of the grid is finished (none failed, now or before)."""
        return not self.failed and not self.kept_failed

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        failed = len(self.failed) + len(self.kept_failed)
        kept = f" ({len(self.kept_failed)} kept from before, not retried)" if self.kept_failed \
            else ""
        return (f"{len(self.finished)} cell(s) finished, {len(self.skipped)} skipped (done "
                f"before), {failed} failed{kept}; records in {self.run_dir}")


def run_preset(
    preset: Preset, run_dir: str | Path, *, progress: bool = True,
    log: Callable[[str], None] | None = None, keep_failed: bool = False,
    executor: str = "local", ray_options=None, options=None,
) -> RunSummary:
    """Run every cell of ``preset`` not yet finished in ``run_dir``; see the module docstring.

    Guarantees: only one process works on ``run_dir`` at a time (:mod:`bench.grid.lock`); a
    folder holding a run of another configuration is refused before any cell runs
    (:func:`bench.grid.folder.check_same_run`), and so is any bad input
    (:func:`bench.presets.checks.check_preset`); cells recorded as failed are run again unless
    ``keep_failed``; temporary files of an interrupted run are removed first.
    ``executor``: a name of :data:`bench.grid.executors.EXECUTORS`; ``options`` its options
    (``ray_options``: the same, for the ``ray`` executor).
    """
    chosen = EXECUTORS.get(executor)
    options = options if options is not None else ray_options
    options = options if options is not None else default_options(executor)
    # Ray's cluster is checked (enough CPUs and GPUs per cell) before the folder is touched
    cluster = chosen.prepare(preset, options, progress)
    check_preset(preset, gpu_here=chosen.gpu_here)
    run_dir = check_writable(run_dir)
    log = log or stderr_line
    with cluster, run_lock(run_dir, log=log):
        check_same_run(preset, run_dir)
        remove_stale_parts(run_dir, log)
        write_run_info(preset, run_dir)
        cells = grid_cells(preset)
        todo, skipped, kept = _plan(cells, run_dir, keep_failed=keep_failed, log=log)
        with CellProgress(len(cells), done_before=len(skipped) + len(kept), log=log) as board:
            if chosen.parallel:  # one cell at a time cannot be shortened by the order
                todo = longest_first(todo, expected_cost(preset, finished_walls(run_dir)))
            statuses = chosen.run(preset, todo, run_dir, options=options, progress=progress,
                                  board=board, total=len(cells))
    finished = tuple(c for c, status in statuses.items() if status == "ok")
    failed = tuple(c for c, status in statuses.items() if status != "ok")
    return RunSummary(run_dir, finished, tuple(skipped), failed, tuple(kept))


def _plan(cells: list[Cell], run_dir: Path, *, keep_failed: bool, log
          ) -> tuple[list[tuple[int, Cell]], list[str], list[str]]:
    """(grid number, cell) of the cells to compute; ids of those skipped and kept failed."""
    todo, skipped, kept = [], [], []
    for number, cell in enumerate(cells, start=1):
        before = records.cell_status(run_dir, cell.id)
        prefix = f"[{number}/{len(cells)}] {cell.id}"
        if before == "ok" or (before == "failed" and keep_failed):
            (skipped if before == "ok" else kept).append(cell.id)
            log(f"{prefix}: {'done' if before == 'ok' else 'failed'} before, skipped")
        else:
            todo.append((number, cell))
    return todo, skipped, kept
