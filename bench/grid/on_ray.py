"""Run a grid's cells as Ray tasks: ``rvqvae-bench run ... --executor ray [--address ADDR]``.

Every unfinished cell becomes one Ray task asking for ``cpus_per_cell`` CPUs and
``gpus_per_cell`` GPUs (fractions allowed; a ``cuda`` preset asks for 1 by default). The task
sets torch's thread count to ``cpus_per_cell`` explicitly, so a cell's numbers do not depend on
the node it lands on, and computes the cell with :func:`bench.grid.cell.compute_cell`, exactly as
the local executor does. Each worker first loads the driver's plugins
(:func:`bench.plugins.install`; a file plugin travels as its source text).

No shared filesystem: the driver builds each scenario's data once per seed and puts it in
Ray's object store (workers never read the data cache or the network for it); the pinned domain
classifiers ship inside the package. Workers return records and artefacts as bytes, and the
driver writes them into the run folder with the same atomic writes as the local executor
(:func:`bench.grid.cell.finish_cell`).

Faults: a worker process that dies mid-cell (killed, out of memory, node lost) makes Ray rerun
the task, up to ``max_retries`` times; a cell that raises is a failed result (recorded, not
retried), as locally. The driver's run lock and resume are the runner's, shared by both
executors: a killed driver's command, run again, recomputes no finished cell.

Without ``--address`` Ray starts on this machine (and stops with the run); with it, the driver
joins that cluster (``ray start --head`` on one node, ``ray start --address HEAD:6379`` on the
others).
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.bounds import bounded
from bench.grid.cell import Cell, CellResult, build_data, compute_cell, failed_result, finish_cell
from bench.grid.progress import CellProgress
from bench.grid.schedule import expected_cost, finished_walls, longest_first
from bench.plugins import Plugin, install, loaded_plugins
from bench.presets import Preset
from bench.presets.spec import sized_scenario
from rvqvae.errors import UserError

MAX_RETRIES = 100


@dataclass(frozen=True)
class RayOptions:
    """How cells are placed on the cluster."""

    address: str | None = None  # None: start Ray on this machine
    cpus_per_cell: int = 1
    gpus_per_cell: float | None = None  # None: 1 for a cuda preset, else 0
    max_retries: int = 2  # reruns of a cell whose worker died

    def gpus(self, preset: Preset) -> float:
        if self.gpus_per_cell is not None:
            return self.gpus_per_cell
        return 1.0 if preset.device_type == "cuda" else 0.0


def import_ray():
    """The ``ray`` module, or one clear error naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray, an optional extra: "
                        "pip install 'rvqvae-bench[ray]'") from None
    return ray


def check_options(options: RayOptions, preset: Preset) -> None:
    """One :class:`UserError` for a bad option, before Ray starts."""
    if isinstance(options.cpus_per_cell, bool) or options.cpus_per_cell < 1:
        raise UserError(f"--cpus-per-cell must be an integer >= 1, got {options.cpus_per_cell}")
    gpus = options.gpus(preset)
    if not math.isfinite(gpus) or gpus < 0 or (gpus > 1 and gpus != int(gpus)):
        raise UserError(f"--gpus-per-cell must be a fraction in (0, 1] or a whole number, "
                        f"got {gpus}")
    if preset.device_type == "cuda" and preset.device != "cuda":
        raise UserError(f"--device {preset.device} with --executor ray: Ray gives each cell its "
                        f"GPU (CUDA_VISIBLE_DEVICES); use --device cuda")
    if gpus > 0 and preset.device_type != "cuda":
        raise UserError(f"--gpus-per-cell {gpus} with device {preset.device!r}: the models "
                        f"would not use the GPU; add --device cuda")
    if options.max_retries < 0:
        raise UserError(f"--max-retries must be >= 0, got {options.max_retries}")
    bounded("--max-retries", options.max_retries, low=0, high=MAX_RETRIES, integer=True,
            why="each retry reruns a cell whose worker died")


def run_on_ray(preset: Preset, todo: list[tuple[int, Cell]], run_dir: Path, *,
               options: RayOptions, progress: bool, board: CellProgress, total: int
               ) -> dict[str, str]:
    """Compute ``todo`` ((grid number, cell) pairs) on Ray; write each result as it arrives.
    ``options`` were checked (:func:`check_options`) by the runner, before its run lock.

    Returns each cell id's status (``ok`` or ``failed``).
    """
    ray = import_ray()
    statuses: dict[str, str] = {}
    with connected(options, preset, progress=progress):
        task = ray.remote(_cell_task).options(
            num_cpus=options.cpus_per_cell, num_gpus=options.gpus(preset),
            max_retries=options.max_retries, retry_exceptions=False)
        worker_preset = preset  # on a GPU node Ray picks the cell's GPU (CUDA_VISIBLE_DEVICES)
        plugins = loaded_plugins()  # each worker loads the driver's plugins before its cell
        data_refs: dict[tuple[str, int], object] = {}  # one data set per (scenario, seed)
        pending, queue = {}, list(todo)
        walls = finished_walls(run_dir)  # read once; each finished cell adds its own

        def submit() -> None:
            number, cell = queue.pop(0)
            key = (cell.scenario, cell.seed)
            if key not in data_refs:
                data_refs[key] = ray.put(build_data(preset, cell))
            ref = task.remote(plugins, worker_preset, cell,
                              sized_scenario(preset, cell.scenario), data_refs[key],
                              options.cpus_per_cell, progress)
            pending[ref] = (number, cell)

        slots = _slots(ray, options, preset)
        # one cell per free slot: each next one is chosen when a slot frees, by the expected
        # costs as measured so far in this run (bench.grid.schedule)
        for _ in range(min(slots, len(queue))):
            submit()
        board.log(f"{len(todo)} cell(s) for Ray, {len(pending)} at a time "
                  f"({options.cpus_per_cell} CPU, {options.gpus(preset):g} GPU each)")
        board.started(len(pending))
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            number, cell = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayError as error:  # the worker died on every attempt
                result = _lost(preset, cell, error, options.max_retries)
            finish_cell(run_dir, result, f"[{number}/{total}] {cell.id}", board)
            statuses[cell.id] = result.status
            if result.status == "ok":
                walls.setdefault(cell.spec.display, []).append(result.wall_s)
            if queue:
                queue[:] = longest_first(queue, expected_cost(preset, walls))
                submit()
                board.started()  # a queued cell takes the freed slot
    return statuses


@contextlib.contextmanager
def connected(options: RayOptions, preset: Preset, *, progress: bool = True) -> Iterator[None]:
    """Ray started (or joined) for the block, its cluster checked against ``options`` first:
    more CPUs or GPUs per cell than it has is a :class:`UserError`. The runner enters this
    before it takes the run folder, so that error comes before anything is written. Nested
    uses share the first one's Ray; the one that started Ray shuts it down."""
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=options.address, include_dashboard=False, log_to_driver=progress,
                 logging_level=logging.WARNING)
    try:
        _check_cluster(ray, options, preset)
        yield
    finally:
        if started_here:
            ray.shutdown()


def _cell_task(plugins: list[Plugin], preset: Preset, cell: Cell, scenario, data, threads: int,
               progress: bool) -> CellResult:
    """The Ray task: one cell on a worker, ``threads`` torch threads, the driver's plugins."""
    import torch

    install(plugins)
    torch.set_num_threads(threads)

    def log(line: str) -> None:
        print(f"{cell.id}: {line}", file=sys.stderr, flush=True)

    return compute_cell(preset, cell, data, scenario=scenario, progress=progress, log=log)


def _check_cluster(ray, options: RayOptions, preset: Preset) -> None:
    resources = ray.cluster_resources()
    where = f"the Ray cluster at {options.address}" if options.address else "local Ray"
    if resources.get("CPU", 0) < options.cpus_per_cell:
        raise UserError(f"{where} has {resources.get('CPU', 0):g} CPUs, fewer than "
                        f"--cpus-per-cell {options.cpus_per_cell}")
    gpus = options.gpus(preset)
    if gpus > 0 and resources.get("GPU", 0) < gpus:
        raise UserError(f"{where} has {resources.get('GPU', 0):g} GPUs, fewer than "
                        f"{gpus:g} per cell; add GPU nodes or run with --device cpu")


def _slots(ray, options: RayOptions, preset: Preset) -> int:
    """How many cells the cluster runs at once."""
    resources = ray.cluster_resources()
    slots = int(resources.get("CPU", 0) // options.cpus_per_cell)
    gpus = options.gpus(preset)
    if gpus > 0:
        slots = min(slots, int(resources.get("GPU", 0) // gpus))
    return max(slots, 1)


def _lost(preset: Preset, cell: Cell, error: Exception, retries: int) -> CellResult:
    """A failed result for a cell whose worker died on every attempt."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    return failed_result(preset, cell, RuntimeError(
        f"worker lost on all {retries + 1} attempts: {first}"))
