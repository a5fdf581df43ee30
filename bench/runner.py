"""Run a preset's grid of scenario x model x seed into result records.

Each cell: build the scenario's data for the seed -> create and fit the model -> evaluate the
metrics -> write the cell's artefacts and records (:mod:`bench.cell`). Finished cells are
skipped (resume never recomputes a finished cell); a cell that raises is recorded as failed with
its error and the grid goes on, and is retried by the next run of the same grid (unless
``keep_failed``).

Two executors compute the cells: ``local`` (default), one after another in this process, and
``ray`` (:mod:`bench.ray_executor`), one Ray task per cell on this machine or a cluster. Both
share everything else here: the input checks, the run lock, the same-run check, resume, the
writes (by this process only) and the progress bar.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import records
from bench.cell import Cell, build_data, compute_cell, finish_cell, grid_cells
from bench.presets import Preset
from bench.presets.checks import check_preset
from bench.progress import CellProgress, stderr_line
from bench.run_folder import check_same_run, check_writable, remove_stale_parts, write_run_info
from bench.run_lock import run_lock

EXECUTORS = ("local", "ray")


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
    executor: str = "local", ray_options=None,
) -> RunSummary:
    """Run every cell of ``preset`` not yet finished in ``run_dir``; see the module docstring.

    Guarantees: only one process works on ``run_dir`` at a time (:mod:`bench.run_lock`); a
    folder holding a run of another configuration is refused before any cell runs
    (:func:`bench.run_folder.check_same_run`), and so is any bad input
    (:func:`bench.presets.checks.check_preset`); cells recorded as failed are run again unless
    ``keep_failed``; temporary files of an interrupted run are removed first.
    ``ray_options``: a :class:`bench.ray_executor.RayOptions` (``executor="ray"``).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    cluster = contextlib.nullcontext()
    if executor == "ray":
        from bench.ray_executor import RayOptions, check_options, connected, import_ray

        import_ray()
        ray_options = ray_options or RayOptions()
        check_options(ray_options, preset)
        cluster = connected(ray_options, preset, progress=progress)
    # with Ray the GPUs are the cluster's, checked when it is reached
    check_preset(preset, gpu_here=executor == "local")
    run_dir = check_writable(run_dir)
    log = log or stderr_line
    # Ray's cluster is checked (enough CPUs and GPUs per cell) before the folder is touched
    with cluster, run_lock(run_dir, log=log):
        check_same_run(preset, run_dir)
        remove_stale_parts(run_dir, log)
        write_run_info(preset, run_dir)
        cells = grid_cells(preset)
        todo, skipped, kept = _plan(cells, run_dir, keep_failed=keep_failed, log=log)
        with CellProgress(len(cells), done_before=len(skipped) + len(kept), log=log) as board:
            if executor == "ray":
                from bench.ray_executor import run_on_ray
                from bench.schedule import expected_cost, longest_first

                # parallel workers: longest expected cells first (the local executor runs one
                # cell at a time, where the order cannot shorten the run: grid order)
                todo = longest_first(todo, expected_cost(preset, run_dir))
                statuses = run_on_ray(preset, todo, run_dir, options=ray_options,
                                      progress=progress, board=board, total=len(cells))
            else:
                statuses = _run_local(preset, todo, run_dir, progress=progress, board=board,
                                      total=len(cells))
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


def _run_local(preset: Preset, todo: list[tuple[int, Cell]], run_dir: Path, *,
               progress: bool, board: CellProgress, total: int) -> dict[str, str]:
    """The local executor: the cells one after another in this process."""
    statuses: dict[str, str] = {}
    data_cache: dict[tuple[str, int], object] = {}
    for number, cell in todo:
        prefix = f"[{number}/{total}] {cell.id}"
        retrying = records.cell_status(run_dir, cell.id) == "failed"
        board.log(f"{prefix}: {'retrying (failed before)' if retrying else 'running'}")
        board.started()
        key = (cell.scenario, cell.seed)
        if key not in data_cache:
            data_cache.clear()  # one scenario's data in memory at a time
            data_cache[key] = build_data(preset, cell)
        result = compute_cell(preset, cell, data_cache[key], progress=progress,
                              log=functools.partial(_prefixed, board.log, prefix))
        finish_cell(run_dir, result, prefix, board)
        statuses[cell.id] = result.status
    return statuses


def _prefixed(log, prefix: str, line: str) -> None:
    log(f"{prefix}: {line}")
