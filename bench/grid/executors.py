"""The executors that compute a grid's cells, by name (``run --executor NAME``), in the
registry pattern of models and backends.

An :class:`Executor` has two steps: ``prepare(preset, options, progress)`` checks its options and
returns the context it runs in (Ray: the cluster, started or joined and checked before the run
folder is touched); ``run(preset, todo, run_dir, options=..., progress=..., board=..., total=...)``
computes the ``(grid number, cell)`` pairs of ``todo`` and returns each cell id's status, writing
each result as it arrives (:func:`bench.grid.cell.finish_cell`). ``parallel`` executors get
their cells longest-expected-first (:mod:`bench.grid.schedule`); ``gpu_here`` says whether the
preset's GPU must be on this machine (Ray's GPUs are the cluster's).

- ``local``: one cell after another in this process (options: none).
- ``ray``: one Ray task per cell on this machine or a cluster (options:
  :class:`bench.grid.on_ray.RayOptions`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import records
from rvqvae.registry import Registry


@dataclass(frozen=True)
class Executor:
    """How the cells of a grid are computed (see the module docstring)."""

    prepare: Callable[..., contextlib.AbstractContextManager]
    run: Callable[..., dict[str, str]]
    parallel: bool = False
    gpu_here: bool = True
    description: str = ""


EXECUTORS: Registry[Executor] = Registry("executor")


def _run_local(preset, todo, run_dir: Path, *, options: Any, progress: bool, board,
               total: int) -> dict[str, str]:
    """The cells one after another in this process, one scenario's data in memory at a time."""
    from bench.grid.cell import build_data, compute_cell, finish_cell

    statuses: dict[str, str] = {}
    data_cache: dict[tuple[str, int], object] = {}
    for number, cell in todo:
        prefix = f"[{number}/{total}] {cell.id}"
        retrying = records.cell_status(run_dir, cell.id) == "failed"
        board.log(f"{prefix}: {'retrying (failed before)' if retrying else 'running'}")
        board.started()
        key = (cell.scenario, cell.seed)
        if key not in data_cache:
            data_cache.clear()
            data_cache[key] = build_data(preset, cell)
        result = compute_cell(preset, cell, data_cache[key], progress=progress,
                              log=functools.partial(_prefixed, board.log, prefix))
        finish_cell(run_dir, result, prefix, board)
        statuses[cell.id] = result.status
    return statuses


def _prefixed(log, prefix: str, line: str) -> None:
    log(f"{prefix}: {line}")


def _prepare_local(preset, options, progress: bool):
    return contextlib.nullcontext()


def _prepare_ray(preset, options, progress: bool):
    from bench.grid.on_ray import check_options, connected, import_ray

    import_ray()
    check_options(options, preset)
    return connected(options, preset, progress=progress)


def _run_ray(preset, todo, run_dir: Path, *, options, progress: bool, board, total: int
             ) -> dict[str, str]:
    from bench.grid.on_ray import run_on_ray

    return run_on_ray(preset, todo, run_dir, options=options, progress=progress, board=board,
                      total=total)


def default_options(name: str):
    """The options an executor runs with when none are given."""
    if name == "ray":
        from bench.grid.on_ray import RayOptions

        return RayOptions()
    return None


EXECUTORS.register("local", Executor(_prepare_local, _run_local, parallel=False, gpu_here=True),
                   description="one cell after another in this process")
EXECUTORS.register("ray", Executor(_prepare_ray, _run_ray, parallel=True, gpu_here=False),
                   description="one Ray task per cell, on this machine or a cluster")
