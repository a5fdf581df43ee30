"""The order in which an executor hands out cells: longest expected first.

With P workers, starting the longest jobs first (the LPT rule, Graham 1969) keeps the last
cell from running alone after the others finished: its makespan is within 4/3 of the optimum.
A cell's expected seconds: the median ``wall_s`` of the same model's cells already finished in
the run folder (earlier in this run, or a resumed or extended one). A model with no finished
cell yet comes first, by its training images x epochs (the prior's epochs included) as a
relative size: it may be the longest, and its first cell measures it (a size says little
across models: an NS-VAE epoch costs several VQ-VAE epochs). Then the measured, longest
first. The Ray executor re-sorts what is left each time a cell finishes.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from bench import records

EPOCH_OPTIONS = ("epochs", "prior_epochs")


def longest_first(todo: list, expected: Callable[[object], tuple]) -> list:
    """``todo`` ((grid number, cell) pairs) sorted by ``expected(cell)`` descending (stable)."""
    return sorted(todo, key=lambda item: expected(item[1]), reverse=True)


def expected_cost(preset, walls: dict[str, list[float]]) -> Callable[[object], tuple]:
    """``cell -> (not measured?, seconds or size)``: tuples sort unmeasured models first.
    ``walls``: each model's finished cells' seconds (:func:`finished_walls`, plus what a
    running grid adds as cells finish)."""
    measured = {model: statistics.median(values) for model, values in walls.items() if values}

    def cost(cell) -> tuple:
        if cell.spec.display in measured:
            return (0, measured[cell.spec.display])
        epochs = sum(float(cell.spec.options.get(name, 1)) for name in EPOCH_OPTIONS)
        return (1, float(preset.train_size or 1) * epochs)

    return cost


def finished_walls(run_dir: str | Path) -> dict[str, list[float]]:
    """The ``wall_s`` of every finished (not failed) cell in the run folder, by model."""
    walls: dict[str, list[float]] = defaultdict(list)
    cells = Path(run_dir) / records.CELLS
    for path in sorted(cells.glob("*.json")) if cells.is_dir() else []:
        try:
            rows = records.load_records(path)
        except Exception:  # an unreadable file is the runner's concern, not the schedule's
            continue
        if not rows or any(row.get("status") == "failed" for row in rows):
            continue
        if isinstance(rows[0].get("wall_s"), (int, float)):
            walls[str(rows[0].get("model"))].append(float(rows[0]["wall_s"]))
    return dict(walls)
