"""Resume semantics of a run folder: failed cells retried, same configuration, one writer,
no stale temporary files; and the report never calls an incomplete run complete."""

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading

import pytest
import torch
from out_folders import WHERE, unwritable_out

import bench.grid.cell
import bench.grid.runner as runner
from bench import records
from bench.cli import main
from bench.grid.lock import RunLocked, read_holder, run_lock
from bench.presets import ModelSpec, Preset
from bench.report import write_report
from rvqvae.errors import UserError
from rvqvae.models import create_model

PRESET = Preset(name="t", description="tiny", scenarios=("mnist+fmnist@0.25",),
                models=(ModelSpec("vqvae", {"epochs": 1}, "a"),
                        ModelSpec("vqvae", {"epochs": 1}, "b")),
                train_size=64, test_size=32, clean_test_size=64, n_samples=32)
QUIET = {"progress": False, "log": lambda line: None}


def _dead_pid() -> int:
    """The pid of a process that has exited (and was reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)


def _run_together(target, count: int) -> None:
    """Run ``target`` in ``count`` threads at once and wait for all of them."""
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.fixture
def fake_cells(monkeypatch):
    """Cells that take no time; the model labelled in ``broken`` raises."""
    broken: set[str] = set()
    calls: list[str] = []

    def fake_run_cell(preset, scenario, cell, data, **kwargs):
        calls.append(cell.spec.display)
        if cell.spec.display in broken:
            raise RuntimeError(f"{cell.spec.display} is broken")
        return [{"scenario": scenario.name, "model": cell.spec.display, "seed": cell.seed,
                 "metric": "fid_domain_32", "value": 1.0, "status": "ok",
                 "epsilon": scenario.epsilon}], {}

    monkeypatch.setattr(bench.grid.cell, "_fit_and_evaluate", fake_run_cell)
    return broken, calls


def test_a_failed_cell_is_retried_on_rerun_and_kept_only_when_asked(real_data, tmp_path,
                                                                    fake_cells):
    broken, calls = fake_cells
    broken.add("b")
    first = runner.run_preset(PRESET, tmp_path, **QUIET)
    assert first.failed == ("mnist+fmnist@0.25__b__s0",) and not first.ok
    assert records.cell_status(tmp_path, "mnist+fmnist@0.25__b__s0") == "failed"

    calls.clear()
    kept = runner.run_preset(PRESET, tmp_path, keep_failed=True, **QUIET)
    assert calls == [] and kept.kept_failed == ("mnist+fmnist@0.25__b__s0",) and not kept.ok
    assert "1 failed (1 kept from before, not retried)" in kept.line()

    broken.clear()  # the cause is fixed
    second = runner.run_preset(PRESET, tmp_path, **QUIET)
    assert calls == ["b"] and second.ok
    assert second.finished == ("mnist+fmnist@0.25__b__s0",)
    assert second.skipped == ("mnist+fmnist@0.25__a__s0",)
    assert not (tmp_path / "cells" / "mnist+fmnist@0.25__b__s0.traceback.txt").exists()


def test_cli_exit_status_counts_kept_failed_cells(real_data, tmp_path, fake_cells, capsys):
    broken, _ = fake_cells
    broken.add("vqvae")
    argv = ["run", "--scenario", "mnist+fmnist@0.25", "--model", "vqvae", "--train-size", "64",
            "--n-samples", "32", "--out", str(tmp_path)]
    assert main(argv) == 1
    assert main([*argv, "--keep-failed"]) == 1
    err = capsys.readouterr().err
    assert "0 cell(s) finished, 0 skipped (done before), 1 failed (1 kept" in err
    broken.clear()
    assert main(argv) == 0
    assert "1 cell(s) finished, 0 skipped (done before), 0 failed" in capsys.readouterr().err


def test_report_names_failed_and_missing_cells(real_data, tmp_path, fake_cells):
    broken, _ = fake_cells
    broken.add("b")
    runner.run_preset(PRESET, tmp_path, **QUIET)
    (tmp_path / "cells" / "mnist+fmnist@0.25__a__s0.json").unlink()  # as if killed before it
    index = (write_report(tmp_path, figures=False) / "README.md").read_text()
    assert "**Incomplete run: 0 of 2 cells finished**" in index
    assert "- failed: `mnist+fmnist@0.25__b__s0`: RuntimeError: b is broken" in index
    assert "- missing: `mnist+fmnist@0.25__a__s0`" in index

    broken.clear()
    runner.run_preset(PRESET, tmp_path, **QUIET)
    index = (write_report(tmp_path, figures=False) / "README.md").read_text()
    assert "All 2 cells of the grid finished." in index and "Incomplete" not in index


def test_rerun_with_another_configuration_names_the_differences(real_data, tmp_path,
                                                                  fake_cells):
    runner.run_preset(PRESET, tmp_path, **QUIET)
    other = dataclasses.replace(PRESET, n_samples=64, train_size=128)
    with pytest.raises(UserError, match=r"holds a run of another configuration \(n_samples: 32 "
                                        r"-> 64; train_size: 64 -> 128\)"):
        runner.run_preset(other, tmp_path, **QUIET)
    fewer = dataclasses.replace(PRESET, seeds=(1,))
    with pytest.raises(UserError, match=r"seeds: \[0\] -> \[1\]"):
        runner.run_preset(fewer, tmp_path, **QUIET)
    assert json.loads((tmp_path / "run.json").read_text())["preset"]["n_samples"] == 32


def test_added_seeds_extend_the_run(real_data, tmp_path, fake_cells):
    _, calls = fake_cells
    runner.run_preset(PRESET, tmp_path, **QUIET)
    calls.clear()
    more = dataclasses.replace(PRESET, seeds=(0, 1), name="renamed")  # labels may change
    summary = runner.run_preset(more, tmp_path, **QUIET)
    assert calls == ["a", "b"] and len(summary.skipped) == 2
    assert json.loads((tmp_path / "run.json").read_text())["preset"]["seeds"] == [0, 1]


def test_a_locked_folder_is_refused_naming_the_holder(tmp_path):
    with run_lock(tmp_path):
        holder = read_holder(tmp_path / ".lock")
        with pytest.raises(RunLocked) as caught:
            with run_lock(tmp_path):
                pass
    message = str(caught.value)
    assert f"run folder {tmp_path} is in use by pid {os.getpid()} on host " in message
    assert f"(started {holder['started']})" in message
    assert not (tmp_path / ".lock").exists()  # released


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path):
    pid = _dead_pid()
    (tmp_path / ".lock").write_text(json.dumps(
        {"pid": pid, "host": socket.gethostname(), "started": "2020-01-01T00:00:00Z"}))
    lines = []
    with run_lock(tmp_path, log=lines.append):
        assert read_holder(tmp_path / ".lock")["pid"] == os.getpid()
    assert lines and "taking over the stale lock" in lines[0] and f"pid {pid}" in lines[0]


def test_another_hosts_lock_is_never_taken_over(tmp_path):
    (tmp_path / ".lock").write_text(json.dumps(
        {"pid": 1, "host": "elsewhere", "started": "2020-01-01T00:00:00Z"}))
    with pytest.raises(RunLocked, match="in use by pid 1 on host elsewhere"):
        with run_lock(tmp_path):
            pass


def test_stale_part_files_are_removed_at_start(real_data, tmp_path, fake_cells):
    cell_dir = tmp_path / "cells" / "mnist+fmnist@0.25__a__s0"
    cell_dir.mkdir(parents=True)
    (cell_dir / ".model.pt.abc123.part").write_bytes(b"half")
    (tmp_path / "cells" / ".x.json.zz.part").write_text("[")
    lines = []
    runner.run_preset(PRESET, tmp_path, progress=False, log=lines.append)
    assert not list(tmp_path.rglob("*.part"))
    assert "removed 2 stale temporary file(s) left by an interrupted run" in lines


def test_concurrent_model_saves_to_one_path_do_not_collide(tmp_path):
    model = create_model("vqvae", codebook_size=4, hidden_channels=4, residual_channels=4,
                         latent_dim=4)
    errors = []

    def save_many():
        try:
            for _ in range(15):
                model.save(tmp_path / "model.pt")
        except Exception as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    _run_together(save_many, 3)
    assert errors == []
    assert not list(tmp_path.glob("*.part"))
    loaded = type(model).load(tmp_path / "model.pt")
    assert torch.equal(loaded.codebook.weight, model.codebook.weight)


def test_kernels_write_to_a_run_folder_by_default():
    from bench.cli import build_parser

    args = build_parser("kernels").parse_args(["kernels"])
    assert args.out == "runs/kernels"  # results/kernels changes only through tox -e bench


def test_of_two_takers_of_a_stale_lock_exactly_one_wins(tmp_path):
    from bench.grid.lock import acquire

    pid = _dead_pid()
    for _ in range(30):
        (tmp_path / ".lock").write_text(json.dumps(
            {"pid": pid, "host": socket.gethostname(), "started": "then"}))
        barrier, outcomes = threading.Barrier(4), []

        def take(barrier=barrier, outcomes=outcomes):
            barrier.wait()
            try:
                outcomes.append(acquire(tmp_path / ".lock"))
            except RunLocked:
                outcomes.append(None)

        _run_together(take, 4)
        winners = [o for o in outcomes if o is not None]
        assert len(winners) == 1 and read_holder(tmp_path / ".lock")["token"] == winners[0]
        (tmp_path / ".lock").unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ------------------------------------------------- an --out that cannot be written (issue #22)

@pytest.mark.parametrize("command", ["run", "report"])
@pytest.mark.parametrize("where", WHERE)
def test_an_unwritable_out_is_one_line_and_nothing_is_written(real_data, tmp_path, capsys,
                                                             monkeypatch, fake_cells, command,
                                                             where):
    """``run --out`` / ``report --out`` on an existing file or a read-only file system gave a
    traceback (from run_lock.py's mkdir, or the report's temporary folder)."""
    from synthetic_run import write_synthetic_run

    out, expected = unwritable_out(tmp_path, where, monkeypatch)
    if command == "run":
        argv = ["run", "--scenario", "mnist+fmnist@0.25", "--model", "vqvae", "--n-samples",
                "32", "--train-size", "64"]
    else:
        run = write_synthetic_run(tmp_path / "synthetic", cell_files=False, models=("vqvae",),
                                  seeds=(0,))
        argv = ["report", str(run), "--no-figures"]
    before = sorted(tmp_path.rglob("*"))
    assert main([*argv, "--out", str(out)]) == 2
    assert capsys.readouterr().err == expected
    assert sorted(tmp_path.rglob("*")) == before
    assert not fake_cells[1]  # no cell ran


def test_a_lock_file_that_cannot_be_created_is_one_user_error(tmp_path, monkeypatch):
    """The folder passed the check, then the disk refused the lock file (e.g. it was remounted
    read-only): one UserError naming the folder, not an OSError traceback."""
    import errno

    real_open = os.open

    def refusing_open(path, *args, **kwargs):
        if str(path).endswith(".lock"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    with pytest.raises(UserError) as caught, run_lock(tmp_path / "run"):
        pass
    assert str(caught.value) == (f"cannot write into the run folder {tmp_path / 'run'} "
                                 f"(Read-only file system); pass another --out on a writable "
                                 f"disk")
