"""Per-cell times of arms measured in one run (bench.studies.cell_times) on hand-made records."""

from __future__ import annotations

import math

import pytest

from bench.records import make_record, records_frame, write_cell
from bench.studies.cell_times import cell_table, main, summary
from rvqvae.errors import UserError


def _arm(walls: list[float], *, prior: float | None, sha: str):
    """One record per phase for each cell; ``prior=None``: code without per-phase timing."""
    rows = []
    for seed, wall in enumerate(walls):
        cell = f"mnist+fmnist@0.2__vqvae__s{seed}"
        metrics = {"fid_domain_500": 100.0}
        if prior is not None:
            metrics |= {"seconds_fit": wall - 2, "seconds_prior": prior + seed}
        rows += [make_record(scenario="mnist+fmnist@0.2", model="vqvae", seed=seed, metric=m,
                             value=v, status="ok", cell_id=cell, wall_s=wall, git_sha=sha * 40,
                             device="cpu (AMD EPYC, 1 thread)") for m, v in metrics.items()]
    return records_frame(rows)


def test_medians_ratios_and_missing_phases():
    cells = cell_table({"old": _arm([30.0, 40.0, 35.0], prior=None, sha="a"),
                        "new": _arm([14.0, 21.0, 16.0], prior=8.0, sha="b")})
    assert len(cells) == 6 and set(cells["arm"]) == {"old", "new"}
    table = summary(cells).set_index("arm")
    assert table.loc["old", "median cell s"] == 35.0 and table.loc["new", "median cell s"] == 16.0
    assert table.loc["new", "/ old"] == pytest.approx(16 / 35)
    assert table.loc["new", "prior"] == 9.0 and math.isnan(table.loc["old", "prior"])
    assert table.loc["new", "commit"] == "b" * 12
    assert list(table.columns[:3]) == ["cells", "median cell s", "/ old"]


def test_the_command_writes_both_files_and_rejects_a_bad_arm(tmp_path, capsys):
    for arm, walls in (("old", [30.0, 40.0]), ("new", [15.0, 18.0])):
        records = _arm(walls, prior=7.0, sha="c").to_dict("records")
        for cell in {r["cell_id"] for r in records}:
            write_cell(tmp_path / arm, cell, [r for r in records if r["cell_id"] == cell])
    assert main([f"old={tmp_path / 'old'}", f"new={tmp_path / 'new'}",
                 "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "cell_times.md").read_text()
    assert "| new | 2 | 16.50 | 0.47 |" in text
    assert len((tmp_path / "out" / "cell_times.csv").read_text().splitlines()) == 5
    with pytest.raises(UserError, match="'runs/old' is not ARM=RUN"):
        main(["runs/old"])
