"""Two driver processes on one run folder, one killed mid-run: one computes, the other gets the
lock error; nothing is lost or half-written, and a rerun takes over the stale lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

CELLS = 16  # the grid below: one scenario, one model, 16 seeds
GRID = """
scenarios = ["mnist+fmnist@0.25"]
seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]  # long enough to kill it mid-grid
train_size = 64
test_size = 32
clean_test_size = 64
n_samples = 16
[[models]]
name = "vqvae"
[models.options]
epochs = 1
prior_epochs = 1
codebook_size = 8
hidden_channels = 8
residual_channels = 8
latent_dim = 8
"""


def _driver(tmp_path, out, name):
    command = [sys.executable, "-m", "bench.cli", "run", "--preset", str(tmp_path / "grid.toml"),
               "--out", str(out), "--quiet"]
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed by the test
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path), log


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _all_cells_parse(out) -> list[str]:
    names = []
    for path in sorted((out / "cells").glob("*.json")):
        rows = json.loads(path.read_text())  # never half-written
        assert rows and all(row["cell_id"] == path.stem for row in rows)
        names.append(path.stem)
    return names


@pytest.mark.slow
def test_two_drivers_one_killed_nothing_lost(real_data, tmp_path):
    (tmp_path / "grid.toml").write_text(GRID)
    out = tmp_path / "run"
    first, first_log = _driver(tmp_path, out, "first")
    try:
        _wait_for(lambda: (out / ".lock").exists() or first.poll() is not None, 120,
                  "the first driver's lock")
        assert first.poll() is None, (tmp_path / "first.log").read_text()
        _wait_for(lambda: (out / ".lock").stat().st_size > 0, 30, "the lock's content")
        started = json.loads((out / ".lock").read_text())["started"]
        second, second_log = _driver(tmp_path, out, "second")
        assert second.wait(120) == 2
        second_log.close()
        refused = (tmp_path / "second.log").read_text().strip().splitlines()
        assert refused == [f"rvqvae-bench: error: run folder {out} is in use by pid "
                           f"{first.pid} on host {os.uname().nodename} (started {started}) "
                           f"(lock file {out / '.lock'}); wait for it to finish, or delete the "
                           f"lock file if that process is gone"]

        # kill the first driver mid-run: after its first cell, during another one
        _wait_for(lambda: len(list((out / "cells").glob("*.json"))) >= 1
                  or first.poll() is not None, 300, "the first cell")
        assert first.poll() is None, "the grid finished before it could be killed"
        first.send_signal(signal.SIGKILL)  # at once: a cell takes well under a second here
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(30)
        first_log.close()
    done_before = _all_cells_parse(out)
    assert 1 <= len(done_before) < CELLS and (out / ".lock").exists()  # a stale lock stays behind

    third, third_log = _driver(tmp_path, out, "third")
    assert third.wait(600) == 0
    third_log.close()
    log = (tmp_path / "third.log").read_text()
    assert f"taking over the stale lock {out / '.lock'} of dead process pid {first.pid}" in log
    assert log.count("done before, skipped") == len(done_before)
    assert len(_all_cells_parse(out)) == CELLS
    assert not list(out.rglob("*.part")) and not (out / ".lock").exists()
