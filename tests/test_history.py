"""`rvqvae-bench history` and `compare --history`: points from git history, from result sets
and from a history file; the gate's outcome between successive points; table and figures."""

from __future__ import annotations

import subprocess

import pandas as pd
import pytest

from bench.cli import main
from bench.history import history_markdown, history_table, points_from_file, points_from_git


def _aggregate(fid_vqvae: float, fid_rvqvae: float = 120.0) -> str:
    rows = [("mnist+fmnist@0.3", model, "fid_domain_500", mean, 1.0, 5)
            for model, mean in (("vqvae", fid_vqvae), ("rvqvae", fid_rvqvae))]
    rows.append(("mnist+fmnist@0.3", "vqvae", "recon_mse_clean", 0.01, 0.001, 5))
    return pd.DataFrame(rows, columns=["scenario", "model", "metric", "mean", "std", "n"]
                        ).to_csv(index=False)


@pytest.fixture
def repo(tmp_path):
    """A git repository whose results/baseline.csv changed three times: FID of vqvae 100, 100
    (another metric changed), then 150 (a regression the gate must flag)."""
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@example.org")
    git("config", "user.name", "t")
    (tmp_path / "results").mkdir()
    for fid, rvq in ((100.0, 120.0), (100.0, 121.0), (150.0, 121.0)):
        (tmp_path / "results" / "baseline.csv").write_text(_aggregate(fid, rvq))
        git("add", "-A")
        git("commit", "-qm", f"baseline {fid}")
    (tmp_path / "README.md").write_text("unrelated\n")
    git("add", "-A")
    git("commit", "-qm", "a commit that does not touch the baseline")
    return tmp_path


def test_points_from_git_are_the_file_at_each_commit_that_changed_it(repo):
    points = points_from_git("results/baseline.csv", repo=repo)
    assert len(points) == 3 and all(len(p.commit) == 40 for p in points)
    table = history_table(points)  # default: the catalog's primary metrics (FID, not MSE)
    assert set(table["metric"]) == {"fid_domain_500"}
    outcome = table.set_index(["point", "model"])["outcome"]
    assert outcome[0, "vqvae"] == "first"
    assert outcome[1, "vqvae"] == "unchanged" and outcome[1, "rvqvae"] == "unchanged"
    assert outcome[2, "vqvae"] == "regressed" and outcome[2, "rvqvae"] == "unchanged"
    text = history_markdown(table)
    assert "| mnist+fmnist@0.3 | vqvae | 100 ± 1 | 100 ± 1 | 150 ± 1 ▲ |" in text
    assert len(history_table(points, ["recon_mse_.*"])) == 3


def test_history_command_writes_table_and_one_figure_per_metric(repo, capsys):
    out = repo / "hist"
    assert main(["history", "--git", "results/baseline.csv", "--repo", str(repo),
                 "--metric", "fid_.*", "recon_mse_clean", "--out", str(out)]) == 0
    table = pd.read_csv(out / "history.csv")
    assert len(table) == 9 and (table["outcome"] == "regressed").sum() == 1
    for metric in ("fid_domain_500", "recon_mse_clean"):
        assert (out / "figures" / f"history__{metric}.png").stat().st_size > 1000
    assert "1 (scenario, model, metric) changes flagged" in (out / "README.md").read_text()


def test_compare_appends_each_gate_run_to_a_history_file(tmp_path, capsys):
    for name, fid in (("base", 100.0), ("run1", 100.5), ("run2", 160.0)):
        (tmp_path / f"{name}.csv").write_text(_aggregate(fid))
    history = tmp_path / "history.csv"
    assert main(["compare", str(tmp_path / "base.csv"), str(tmp_path / "run1.csv"),
                 "--history", str(history)]) == 0
    assert main(["compare", str(tmp_path / "base.csv"), str(tmp_path / "run2.csv"),
                 "--history", str(history)]) == 1
    points = points_from_file(history)
    assert [len(p.cells) for p in points] == [3, 3]
    table = history_table(points)
    assert table.loc[table["model"] == "vqvae", "mean"].tolist() == [100.5, 160.0]
    assert table.loc[(table["point"] == 1) & (table["model"] == "vqvae"), "outcome"].item() \
        == "regressed"
    capsys.readouterr()
    assert main(["history", "--from", str(history), "--out", str(tmp_path / "h"),
                 "--no-figures"]) == 0
    assert (tmp_path / "h" / "history.csv").is_file()


@pytest.mark.parametrize("argv, message", [
    (["history", "--out", "h"], "give --git FILE, --from FILE or result sets to draw a "
                                "history of"),
    (["history", "--git", "nope.csv", "--out", "h"],
     "git has no commit that changed nope.csv in .; give a tracked results file"),
    (["history", "--from", "missing.csv", "--out", "h"],
     "history file missing.csv does not exist; 'compare --history missing.csv' starts one"),
])
def test_bad_history_input_is_one_line_and_writes_nothing(repo, capsys, monkeypatch, argv,
                                                           message):
    monkeypatch.chdir(repo)
    assert main(argv) == 2
    assert capsys.readouterr().err == f"rvqvae-bench: error: {message}\n"
    assert not (repo / "h").exists()


def test_the_committed_baseline_history_is_what_git_history_gives():
    """results/history/ci-baseline was drawn from this repository's own baseline commits: the
    same commits, read again, give the same table (later baseline commits are left out)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    committed = pd.read_csv(root / "results/history/ci-baseline/history.csv", dtype={"commit": str})
    try:
        points = points_from_git("results/baselines/ci.csv", repo=root)
    except Exception as error:  # no git, or a shallow clone without the history
        pytest.skip(f"git history unavailable: {error}")
    kept = [p for p in points if p.commit in set(committed["commit"])]
    if len(kept) < committed["commit"].nunique():
        pytest.skip("this clone lacks some of the committed history's commits (shallow?)")
    again = history_table(kept)
    columns = ["point", "commit", "scenario", "model", "metric", "mean", "std", "n", "outcome"]
    pd.testing.assert_frame_equal(again[columns].reset_index(drop=True),
                                  committed[columns].reset_index(drop=True), check_dtype=False)
