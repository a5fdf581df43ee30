"""The kernel benchmark harness: grid, runner rows, ratios, outputs and the CLI's errors."""

from __future__ import annotations

import json
import sys
import types

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from out_folders import WHERE, unwritable_out

from bench import cli
from bench.compare import compare, load_cells, load_tolerances
from bench.kernels import grid as grid_module
from bench.kernels.grid import HEADLINE, Case, grid
from bench.kernels.timing import run_grid
from bench.records import make_record
from bench.report.aggregate import aggregate
from rvqvae.errors import UserError
from rvqvae.quantize import available_backends

TINY = [Case(300, 40, 16, "float32", "plain"), Case(300, 40, 16, "float64", "weighted")]
FAST = [name for name in ("auto", "chunked", "fused", "torch-cdist", "faiss", "vqp", "gemm")
        if name != "fused" or "fused" in available_backends("cpu")]


@pytest.fixture(scope="module")
def tiny_rows():
    return run_grid(TINY, threads=1, min_run_time=0.01, rounds=1, only=FAST,
                    progress=lambda line: None)


def test_quick_grid_holds_the_headline_shape_plain_and_weighted():
    cases = grid("quick")
    for distance in ("plain", "weighted"):
        assert Case(**HEADLINE, distance=distance) in cases


def test_unknown_grid_is_a_user_error():
    with pytest.raises(UserError, match="kernel grid 'huge' is unknown; known: ci, full, quick"):
        grid("huge")


def test_every_contender_is_timed_and_correct_on_every_case(tiny_rows):
    frame = pd.DataFrame(tiny_rows)
    assert len(frame) == len(TINY) * len(FAST)
    assert set(frame["contender"]) == set(FAST)
    searchers = frame[frame["contender"] != "gemm"]
    assert (searchers["agree"] == 1.0).all()  # random inputs: every row a true nearest
    assert (frame["median_s"] > 0).all() and (frame["iqr_s"] >= 0).all()
    assert (frame["compile_s"] >= 0).all()


def test_rows_that_are_not_like_for_like_say_why(tiny_rows):
    note = {(row["dtype"], row["contender"]): row["not_like_for_like"] for row in tiny_rows}
    for name in ("auto", "chunked", "fused", "torch-cdist", "vqp"):
        assert note["float32", name] == ""
        assert note["float64", name] == "float64 vs faiss float32"
    assert note["float64", "faiss"] == note["float32", "faiss"] == ""
    assert note["float32", "gemm"] == "roofline: a GEMM, no search"


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


def test_cli_writes_table_json_csv_markdown_figure_and_records(tmp_path, monkeypatch, capsys):
    cases = [Case(256, k, 64, "float32", "plain") for k in (16, 48)]
    monkeypatch.setattr(grid_module, "grid", lambda name: cases)
    status = cli.main(["kernels", "--out", str(tmp_path), "--threads", "1", "--json",
                       "--only", "auto,faiss,gemm", "--min-run-time", "0.01",
                       "--rounds", "1", "--repeats", "2"])
    assert status == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "kernels.json").read_text())
    assert printed["rows"] == written["rows"] and len(written["rows"]) == 2 * 2 * 3
    meta = written["meta"]
    assert meta["threads"] == 1 and meta["repeats"] == 2
    assert meta["auto_backend"] == ("fused" if "fused" in available_backends("cpu") else "chunked")
    assert meta["command"].startswith("rvqvae-bench kernels --device cpu --grid quick --repeats 2")
    assert {"git_sha", "versions", "device"} <= set(meta)
    assert len(pd.read_csv(tmp_path / "kernels.csv")) == 12
    table = (tmp_path / "kernels.md").read_text()
    assert "| N | K | D |" in table and "| runs |" in table
    assert (tmp_path / "kernels.png").read_bytes()[:4] == b"\x89PNG"
    # The records: one cell per (case, contender, repeat), read by compare like any run.
    cells = load_cells(tmp_path)
    first = cells["scenario"] == "kernel_n256_k16_d64_float32_plain"
    auto = cells[(cells["model"] == "auto") & first]
    assert set(auto["metric"]) == {"vectors_per_s", "gflops", "compile_s", "ratio_faiss",
                                   "pct_gemm", "agreement"}
    assert (auto.loc[auto["metric"] == "agreement", "mean"] == 1.0).all()
    gemm = cells[cells["model"] == "gemm"]
    assert not {"agreement", "pct_gemm"} & set(gemm["metric"])  # searches nothing
    assert (auto["n"] == 2).all() and (auto["seeds"] == "0,1").all()
    faiss = cells[cells["model"] == "faiss"]
    # ratios only for our backends: a peer's ratio to a peer judges no code of ours, and a
    # loaded machine moves it most (a CI run failed on the GEMM's ratio to FAISS alone)
    assert not {"ratio_faiss", "pct_gemm"} & (set(faiss["metric"]) | set(gemm["metric"]))
    written = load_cells(tmp_path / "aggregate.csv")  # the baseline format, as report writes it
    same = compare(written, cells, load_tolerances())
    assert set(same["outcome"]) == {"unchanged"} and len(same) == len(cells)


def test_kernel_gate_catches_a_fall_back_to_a_slow_backend(tmp_path, monkeypatch):
    """A candidate whose ``auto`` search runs at torch-cdist speed (0.06x FAISS as measured)
    regresses; one 45% slower relative to FAISS and the GEMM (a machine change, or a fall-back
    to chunked, which is that close to FAISS at N=16,384 on a Xeon) does not."""
    records = []  # a 5-repeat baseline with the spread measured between repeats (~3%)
    for seed, (ratio, pct) in enumerate(((1.80, 105.0), (1.75, 101.0), (1.85, 108.0),
                                       (1.78, 103.0), (1.82, 106.0))):
        for metric, value in (("ratio_faiss", ratio), ("pct_gemm", pct)):
            records.append(make_record(scenario="kernel_n16384_k512_d64_float32_plain",
                                       model="auto", seed=seed, metric=metric, value=value,
                                       status="ok", protocol={"benchmark": "kernels"}))
    baseline = aggregate(pd.DataFrame(records))

    def candidate(scale):  # 3 repeats, as the CI gate runs
        scaled = [{**r, "value": r["value"] * scale} for r in records if r["seed"] < 3]
        return aggregate(pd.DataFrame(scaled))

    tolerances = load_tolerances()
    slow = compare(baseline, candidate(0.04), tolerances)
    assert set(slow["outcome"]) == {"regressed"}, slow.to_string()
    other_machine = compare(baseline, candidate(0.55), tolerances)
    assert set(other_machine["outcome"]) == {"unchanged"}


def test_kernel_gate_fails_a_search_that_returns_a_wrong_codeword():
    """Speed is not everything: one row in 200 off the true nearest codeword regresses."""
    def cells(agreement):
        return aggregate(pd.DataFrame([make_record(
            scenario="kernel_n16384_k512_d64_float32_plain", model="auto", seed=seed,
            metric="agreement", value=agreement, status="ok", protocol={"benchmark": "kernels"})
            for seed in range(3)]))

    assert set(compare(cells(1.0), cells(1.0), load_tolerances())["outcome"]) == {"unchanged"}
    assert set(compare(cells(1.0), cells(0.995), load_tolerances())["outcome"]) == {"regressed"}


def test_dry_run_on_cuda_selects_gpu_contenders_without_a_gpu(monkeypatch, capsys):
    """What a first real GPU would time, checked on a CPU: the CPU-only ``fused`` is out,
    ``triton`` is in (and ``auto``), FAISS only with GPU support (faiss-gpu)."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    triton_ok = "triton" in available_backends("cuda")
    assert cli.main(["kernels", "--device", "cuda", "--dry-run"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    names = head.split("contenders: ")[1].split(", ")
    assert head.startswith(f"device cuda: auto = {'triton' if triton_ok else 'chunked'};")
    assert "fused" not in names and "chunked" in names and "gemm" in names
    assert ("faiss" in names) == hasattr(pytest.importorskip("faiss"), "StandardGpuResources")
    fake_faiss = types.SimpleNamespace(StandardGpuResources=object, omp_set_num_threads=print)
    monkeypatch.setitem(sys.modules, "faiss", fake_faiss)
    assert cli.main(["kernels", "--device", "cuda", "--dry-run", "--only", "faiss,auto"]) == 0
    assert "contenders: auto, faiss" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--repeats", "0"], "--repeats must be >= 1, got 0"),
    (["--threads", "0"], "--threads must be >= 1, got 0"),
    (["--min-run-time", "0"], "--min-run-time must be a finite number in (0, 60] seconds, got 0.0"),
    (["--grid", "huge"], "kernel grid 'huge' is unknown; known: ci, full, quick"),
    (["--only", "fast"], "contender 'fast' is unknown or unavailable on cpu"),
])
def test_bad_arguments_are_one_line_before_anything_runs(argv, message, tmp_path, capsys):
    assert cli.main(["kernels", "--dry-run", "--out", str(tmp_path / "out"), *argv]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0]
    assert not (tmp_path / "out").exists()


# ------------------------------------------------ --out and numbers checked first (issue #22)

def _no_timing(monkeypatch):
    """Fail the test if any case would be timed."""
    import bench.kernels.timing

    def forbidden(*args, **kwargs):
        raise AssertionError("the grid was timed although an argument is bad")

    monkeypatch.setattr(bench.kernels.timing, "run_grid", forbidden)


@pytest.mark.parametrize("argv, message", [
    (["--min-run-time", "inf"], "--min-run-time must be a finite number in (0, 60] seconds, got "
                                "inf (each contender is timed at least this long per case and "
                                "round)"),
    (["--min-run-time", "nan"], "--min-run-time must be a finite number in (0, 60] seconds, got "
                                "nan"),
    (["--rounds", "1000000"], "--rounds must be an integer in [1, 100], got 1000000 (each case "
                              "is timed once per round and contender)"),
    (["--threads", "100000"], "--threads must be an integer in [1, "),
])
def test_unbounded_numbers_are_refused_before_any_timing(argv, message, tmp_path, capsys,
                                                         monkeypatch):
    """``--min-run-time inf`` passed the ``> 0`` check and never ended."""
    _no_timing(monkeypatch)
    assert cli.main(["kernels", "--out", str(tmp_path / "out"), *argv]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith(f"rvqvae-bench: error: {message}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", WHERE)
def test_an_unwritable_out_is_refused_before_any_timing(where, tmp_path, capsys, monkeypatch):
    """``kernels --out FILE`` timed the whole grid, then died with FileExistsError."""
    _no_timing(monkeypatch)
    out, expected = unwritable_out(tmp_path, where, monkeypatch)
    assert cli.main(["kernels", "--out", str(out)]) == 2
    assert capsys.readouterr().err == expected


TYPED = st.one_of(st.integers(-2**70, 2**70).map(str), st.integers(-2, 150).map(str),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.sampled_from(["inf", "-inf", "nan", "1e309", "9" * 40, "", "x"]))
KERNEL_OPTIONS = ("--min-run-time", "--repeats", "--rounds", "--threads")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(option=st.sampled_from(KERNEL_OPTIONS), text=TYPED)
def test_fuzzed_kernel_numbers_are_refused_in_one_line_before_any_timing(
        tmp_path, capsys, monkeypatch, option, text):
    """Every numeric option, any size, inf and nan: argparse's usage error, one
    ``rvqvae-bench: error:`` line, or (within its bound) the timing starts."""
    import os

    import bench.kernels.timing

    class Timed(Exception):
        pass

    def timed(*args, **kwargs):
        raise Timed

    monkeypatch.setattr(bench.kernels.timing, "run_grid", timed)
    out = tmp_path / "out"
    try:
        status = cli.main(["kernels", "--grid", "ci", "--out", str(out), f"{option}={text}"])
    except SystemExit as exit_:
        assert exit_.code == 2 and "invalid" in capsys.readouterr().err
    except Timed:
        value = float(text)
        high = {"--min-run-time": 60, "--repeats": 100, "--rounds": 100,
                "--threads": os.cpu_count()}[option]
        assert 0 < value <= high and (option == "--min-run-time" or value == int(value))
    else:
        error = capsys.readouterr().err
        assert status == 2 and error.startswith("rvqvae-bench: error: --")
        assert error.count("\n") == 1
    assert not out.exists()


def _row(contender, gflops, iqr_pct=2.0, repeat=0):
    median = 0.01
    return {"n": 4096, "k": 512, "d": 64, "dtype": "float32", "distance": "plain",
            "contender": contender, "gflops": gflops, "median_s": median,
            "iqr_s": median * iqr_pct / 100, "repeat": repeat}


def test_a_busy_machine_is_marked_by_timing_spread_or_by_a_slow_gemm(tmp_path):
    from bench.kernels.trust import mark_busy, warning_line

    path = tmp_path / "gemm_rates.json"
    quiet = [_row("gemm", 200.0), _row("fused", 300.0)]
    assert mark_busy(quiet, "cpu (X, 2 threads)", path=path) == []
    assert [row["busy"] for row in quiet] == ["", ""] and warning_line([], quiet) is None
    spread = [_row("gemm", 190.0), _row("fused", 290.0, iqr_pct=40)]
    mark_busy(spread, "cpu (X, 2 threads)", path=path)
    assert spread[0]["busy"] == "" and spread[1]["busy"] == "IQR 40% of the median"
    slow = [_row("gemm", 80.0), _row("fused", 120.0)]  # below 0.6 x the recent 195 GFLOP/s
    reasons = mark_busy(slow, "cpu (X, 2 threads)", path=path)
    assert all("GEMM at 41% of this machine's recent 195 GFLOP/s" in r["busy"] for r in slow)
    assert warning_line(reasons, slow).startswith("warning: the machine looks busy: 2 of 2")
    remembered = json.loads(path.read_text())["cpu (X, 2 threads)"]
    assert list(remembered.values()) == [[200.0, 190.0]]  # a busy GEMM lowers no bar
    other = [_row("gemm", 80.0)]
    assert mark_busy(other, "cpu (Y, 1 thread)", path=path) == []  # another machine's history


def test_a_kernel_run_under_an_artificial_load_is_marked_and_warned(tmp_path, monkeypatch,
                                                                    capsys):
    """The GEMM's quiet rate on this machine, then the same run beside CPU-burning processes:
    the table marks it and the command prints the warning."""
    import os
    import subprocess

    from bench.kernels.trust import rates_path

    monkeypatch.setenv("RVQVAE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(grid_module, "grid", lambda name: [Case(16384, 512, 64)])
    argv = ["kernels", "--only", "gemm,chunked", "--threads", "1", "--min-run-time", "0.2",
            "--rounds", "2", "--json"]
    assert cli.main([*argv, "--out", str(tmp_path / "quiet")]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    quiet = next(row["gflops"] for row in rows if row["contender"] == "gemm")
    shape = "N=16384 K=512 D=64 float32 plain"
    machine = json.loads((tmp_path / "quiet" / "kernels.json").read_text())["meta"]["device"]
    rates_path().write_text(json.dumps({machine: {shape: [quiet]}}))  # this machine's quiet rate
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(3 * (os.cpu_count() or 1))]
    try:
        assert cli.main([*argv, "--out", str(tmp_path / "loaded")]) == 0
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    captured = capsys.readouterr()
    rows = json.loads(captured.out)["rows"]
    assert all(row["busy"] for row in rows), rows
    assert "warning: the machine looks busy" in captured.err
    assert "busy (not trustworthy)" in (tmp_path / "loaded" / "kernels.md").read_text()
