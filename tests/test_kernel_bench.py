"""The kernel benchmark harness: grid, runner rows, ratios, outputs and the CLI's errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench import cli
from bench.kernels import grid as grid_module
from bench.kernels.grid import HEADLINE, Case, grid
from bench.kernels.runner import run_grid
from rvqvae.errors import UserError

TINY = [Case(300, 40, 16, "float32", "plain"), Case(300, 40, 16, "float64", "weighted")]
FAST = ["chunked", "torch-cdist", "faiss", "vqp", "gemm"]


@pytest.fixture(scope="module")
def tiny_rows():
    return run_grid(TINY, threads=1, min_run_time=0.01, rounds=1, only=FAST,
                    progress=lambda line: None)


def test_quick_grid_holds_the_headline_shape_plain_and_weighted():
    cases = grid("quick")
    for distance in ("plain", "weighted"):
        assert Case(**HEADLINE, distance=distance) in cases
    assert Case(65536, 512, 64).flop == 2 * 65536 * 512 * 64


def test_unknown_grid_is_a_user_error():
    with pytest.raises(UserError, match="kernel grid 'huge' is unknown; known: full, quick"):
        grid("huge")


def test_every_contender_is_timed_and_correct_on_every_case(tiny_rows):
    frame = pd.DataFrame(tiny_rows)
    assert len(frame) == len(TINY) * len(FAST)
    assert set(frame["contender"]) == set(FAST)
    searchers = frame[frame["contender"] != "gemm"]
    assert (searchers["agree"] == 1.0).all()  # random inputs: every row a true nearest
    assert (frame["median_s"] > 0).all() and (frame["iqr_s"] >= 0).all()


def test_rates_and_ratios_are_consistent(tiny_rows):
    for row in tiny_rows:
        assert row["vectors_per_s"] == pytest.approx(row["rows_timed"] / row["median_s"])
        assert row["gflops"] == pytest.approx(
            2 * row["rows_timed"] * row["k"] * row["d"] / row["median_s"] / 1e9)
    by_case = pd.DataFrame(tiny_rows).groupby(["dtype", "distance"])
    for _, case in by_case:
        rate = dict(zip(case["contender"], case["vectors_per_s"], strict=True))
        for row in case.itertuples():
            assert row.ratio_faiss == pytest.approx(rate[row.contender] / rate["faiss"])
            assert row.pct_gemm == pytest.approx(100 * rate[row.contender] / rate["gemm"])


def test_unknown_contender_is_a_user_error():
    with pytest.raises(UserError, match="contender 'fast' is unknown or unavailable on cpu"):
        run_grid(TINY, only=["fast"], progress=lambda line: None)


def test_cli_without_gpu_says_so_in_one_line(capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert cli.main(["kernels", "--device", "cuda"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "rvqvae-bench: error: --device cuda needs a CUDA GPU and none is visible; "
        "use --device cpu"
    ]


def test_cli_writes_table_json_csv_markdown_and_figure(tmp_path, monkeypatch, capsys):
    cases = [Case(256, k, 64, "float32", "plain") for k in (16, 48)]
    monkeypatch.setattr(grid_module, "grid", lambda name: cases)
    status = cli.main(["kernels", "--out", str(tmp_path), "--threads", "1", "--json",
                       "--only", "chunked,faiss,gemm", "--min-run-time", "0.01",
                       "--rounds", "1"])
    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "kernels.json").read_text())
    assert printed["rows"] == written["rows"] and len(written["rows"]) == 6
    assert written["meta"]["threads"] == 1 and written["meta"]["auto_backend"] == "chunked"
    assert {"git_sha", "versions", "device"} <= set(written["meta"])
    assert len(pd.read_csv(tmp_path / "kernels.csv")) == 6
    assert "| N | K | D |" in (tmp_path / "kernels.md").read_text()
    assert (tmp_path / "kernels.png").read_bytes()[:4] == b"\x89PNG"
