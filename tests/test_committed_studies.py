"""Every study committed under results/ is reproducible from the repository: its records file
rebuilds its aggregate and its claims exactly, and every record comes from a commit in this
repository's history, made without uncommitted changes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.records import ARCHIVE, read_archive
from bench.report import REPORT_MARKER, write_report

ROOT = Path(__file__).resolve().parent.parent
# every report under results/, at any depth (a study of several runs keeps one per run)
STUDIES = sorted(marker.parent for marker in (ROOT / "results").rglob(REPORT_MARKER))
REBUILT = ("aggregate.csv", "tables/claims.csv", "tables/claims_summary.csv")
# baselines: (records file, the aggregate committed beside it)
BASELINES = [(ROOT / "results/baselines/ci.records.json.gz", ROOT / "results/baselines/ci.csv")]


def test_every_committed_report_ships_its_records():
    assert STUDIES, "no committed study reports found"
    missing = [str(s.relative_to(ROOT)) for s in STUDIES if not (s / ARCHIVE).is_file()]
    assert not missing, f"reports without {ARCHIVE}: {missing}"


@pytest.mark.parametrize("study", STUDIES, ids=lambda s: str(s.relative_to(ROOT / "results")))
def test_a_study_is_rebuilt_from_its_records_alone(study, tmp_path):
    archive = tmp_path / ARCHIVE
    shutil.copy(study / ARCHIVE, archive)  # nothing else of the study is at hand
    claims = study / "tables" / "claims.csv"  # a report made with another --reference
    made = pd.read_csv(claims) if claims.is_file() else pd.DataFrame()
    reference = made["reference"].iloc[0] if len(made) else None
    out = write_report(archive, tmp_path / "report", figures=False, reference=reference)
    for name in REBUILT:
        if not (study / name).is_file():
            assert not (out / name).is_file(), name
            continue
        _assert_same_table(pd.read_csv(out / name), pd.read_csv(study / name), name)


@pytest.mark.parametrize("records_file, aggregate", BASELINES, ids=lambda p: p.name)
def test_a_baseline_is_the_aggregate_of_its_committed_records(records_file, aggregate, tmp_path):
    out = write_report(records_file, tmp_path / "report", figures=False)
    _assert_same_table(pd.read_csv(out / "aggregate.csv"), pd.read_csv(aggregate), aggregate.name)


@pytest.mark.parametrize("archive", [s / ARCHIVE for s in STUDIES] + [b[0] for b in BASELINES],
                         ids=lambda p: p.parent.name + "/" + p.name)
def test_a_study_was_recorded_from_committed_code_of_this_repository(archive):
    records, _ = read_archive(archive)
    shas = {str(r.get("git_sha")) for r in records}
    assert not [s for s in shas if s.endswith("-dirty")], f"{archive}: uncommitted code"
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("no git history here")
    unknown = [sha for sha in shas if subprocess.run(
        ["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=ROOT, capture_output=True
    ).returncode != 0]
    assert not unknown, f"{archive}: commits not in this repository: {unknown}"


def _assert_same_table(rebuilt: pd.DataFrame, committed: pd.DataFrame, name: str) -> None:
    """Equal: text exactly, numbers to 1e-12 relative (float sums may differ in the last bit
    between CPUs' vector units)."""
    assert list(rebuilt.columns) == list(committed.columns), name
    assert len(rebuilt) == len(committed), name
    for column in committed.columns:
        a, b = rebuilt[column], committed[column]
        if pd.api.types.is_numeric_dtype(b) and pd.api.types.is_numeric_dtype(a):
            assert np.allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-12, atol=0,
                               equal_nan=True), f"{name}: column {column}"
        else:
            assert a.fillna("").astype(str).tolist() == b.fillna("").astype(str).tolist(), (
                f"{name}: column {column}")
