"""Longest-expected-first cell order for parallel executors (bench.grid.schedule)."""

from __future__ import annotations

from bench.grid.cell import Cell, grid_cells
from bench.grid.schedule import expected_cost, finished_walls, longest_first
from bench.presets import ModelSpec, Preset
from bench.records import make_record, write_cell

PRESET = Preset(name="p", description="", scenarios=("mnist+fmnist@0.2", "mnist+fmnist@0.4"),
                models=(ModelSpec("vqvae", {"epochs": 2, "prior_epochs": 2}),
                        ModelSpec("nsvae", {"epochs": 8}), ModelSpec("rvqvae", {"epochs": 4})),
                seeds=(0, 1), train_size=100)


def _finished(run, cell: Cell, wall: float, status: str = "ok"):
    write_cell(run, cell.id, [make_record(scenario=cell.scenario, model=cell.spec.display,
                                          seed=cell.seed, metric="m", value=1.0, status=status,
                                          wall_s=wall)])


def test_without_records_the_largest_training_goes_first(tmp_path):
    todo = list(enumerate(grid_cells(PRESET), start=1))
    cost = expected_cost(PRESET, finished_walls(tmp_path))
    order = [cell.spec.name for _, cell in longest_first(todo, cost)]
    # nsvae: 100 images x (8 + 1) epochs; rvqvae 100 x (4 + 1); vqvae 100 x (2 + 2)
    assert order == ["nsvae"] * 4 + ["rvqvae"] * 4 + ["vqvae"] * 4
    numbers = [number for number, _ in longest_first(todo, cost)]
    assert numbers[:4] == [2, 5, 8, 11]  # ties keep the grid order


def test_an_unmeasured_model_comes_first_then_the_measured_by_their_median_time(tmp_path):
    cells = grid_cells(PRESET)
    vq = [c for c in cells if c.spec.name == "vqvae"]
    ns = [c for c in cells if c.spec.name == "nsvae"]
    _finished(tmp_path, vq[0], 30.0)
    _finished(tmp_path, vq[1], 50.0)
    _finished(tmp_path, ns[0], 20.0)
    _finished(tmp_path, ns[1], 999.0, status="failed")  # a failed cell measures nothing
    todo = [(i, c) for i, c in enumerate(cells, start=1) if c not in (vq[0], vq[1], ns[0])]
    cost = expected_cost(PRESET, finished_walls(tmp_path))
    order = [cell.spec.name for _, cell in longest_first(todo, cost)]
    # rvqvae has no finished cell: first, to be measured; then vqvae (40 s), nsvae (20 s)
    assert order == ["rvqvae"] * 4 + ["vqvae"] * 2 + ["nsvae"] * 3
