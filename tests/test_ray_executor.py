"""The Ray executor on an in-process local Ray with 2 CPUs: the same records as the local
executor, a killed worker retried, a killed driver resumed, the lock, and clear errors."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch

import bench.grid.cell
import bench.grid.runner as runner
from bench import records
from bench.cli import main
from bench.grid.lock import RunLocked, run_lock
from bench.grid.on_ray import RayOptions
from bench.metrics.catalog import is_timing
from bench.presets import ModelSpec, Preset, get_preset
from rvqvae.errors import UserError

TINY_VQ = {"epochs": 1, "prior_epochs": 1, "codebook_size": 16, "hidden_channels": 8,
           "residual_channels": 8, "latent_dim": 8}
KILLED = "mnist+fmnist@0.25__killed-once__s0"  # the cell whose first attempt kills its worker
# A plugin (it travels to the workers as its source text, like a user's) whose model kills its
# own worker process on the first attempt; the marker file records that the attempt happened.
KILLER = """
import os, signal
from pathlib import Path
from rvqvae.models import register_model
from rvqvae.models.vqvae import VQVAE

MARKER = {marker!r}

@register_model("vqvae-killed-once")
class KilledOnce(VQVAE):
    def fit(self, *args, **kwargs):
        if not Path(MARKER).exists():
            Path(MARKER).write_text(f"killed worker pid {{os.getpid()}}")
            os.kill(os.getpid(), signal.SIGKILL)
        return super().fit(*args, **kwargs)
"""
QUIET = {"progress": False, "log": lambda line: None}
TIMING = {"wall_s", "timestamp"}


def _preset(*labels: str) -> Preset:
    return Preset(name="test", description="tiny", scenarios=("mnist+fmnist@0.25",),
                  models=tuple(ModelSpec("vqvae", TINY_VQ, label) for label in labels),
                  train_size=64, test_size=32, clean_test_size=64, n_samples=32)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray with 2 CPUs."""
    if os.environ.get("CI"):
        import ray  # CI installs the extra: never skip there
    else:
        ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="WARNING")
    try:
        yield
    finally:
        ray.shutdown()


def _cells(run_dir):
    out = {}
    for path in sorted((run_dir / "cells").glob("*.json")):
        out[path.name] = [{k: v for k, v in row.items() if k not in TIMING}
                          for row in json.loads(path.read_text())
                          if not is_timing(row["metric"])]
    return out


def test_smoke_on_ray_equals_local_bit_for_bit_at_the_same_threads(real_data, tmp_path,
                                                                   ray_cluster):
    preset = get_preset("smoke")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runner.run_preset(preset, tmp_path / "local", **QUIET)
    finally:
        torch.set_num_threads(threads)
    summary = runner.run_preset(preset, tmp_path / "ray", executor="ray",
                                ray_options=RayOptions(cpus_per_cell=1), **QUIET)
    assert summary.ok and len(summary.finished) == 3
    local, on_ray = _cells(tmp_path / "local"), _cells(tmp_path / "ray")
    assert list(on_ray) == list(local) and len(local) == 3
    for name in local:  # values, protocols, device, versions, sha
        assert _kid_rounded(on_ray[name]) == _kid_rounded(local[name]), name
    for cell in local:
        folder = cell.removesuffix(".json")
        for artefact in ("samples.pt", "scores.pt", "history.json"):
            a = (tmp_path / "local" / "cells" / folder / artefact).read_bytes()
            b = (tmp_path / "ray" / "cells" / folder / artefact).read_bytes()
            if artefact == "history.json":  # per-epoch seconds differ
                a, b = (_untimed(json.loads(x)) for x in (a, b))
            else:
                a = torch.load(tmp_path / "local" / "cells" / folder / artefact)
                b = torch.load(tmp_path / "ray" / "cells" / folder / artefact)
                a, b = repr(a), repr(b)
            assert a == b, (cell, artefact)


def _kid_rounded(records):
    """KID is a numpy BLAS computation on features, outside torch's thread setting: its last
    bits follow the BLAS threads of the process (seen on an AMD EPYC: local and Ray differed in
    the 8th digit). Every other value must match bit for bit."""
    return [{**r, "value": float(f"{r['value']:.6g}")} if str(r["metric"]).startswith("kid_")
            and r["value"] is not None else r for r in records]


def _untimed(history):
    return [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in history]


def test_a_worker_killed_mid_cell_is_retried_and_no_record_is_lost(real_data, tmp_path,
                                                                   ray_cluster, monkeypatch):
    from bench import plugins
    from rvqvae.models import MODELS

    marker = tmp_path / "killed"
    (tmp_path / "killer.py").write_text(KILLER.format(marker=str(marker)))
    monkeypatch.setattr(plugins, "_LOADED", {})  # this test's plugin only, for this test
    plugins.load_plugins([str(tmp_path / "killer.py")], entry_points=False)
    preset = dataclasses.replace(_preset("other"), models=(
        ModelSpec("vqvae-killed-once", TINY_VQ, "killed-once"), *_preset("other").models))
    try:
        summary = runner.run_preset(preset, tmp_path / "run", executor="ray",
                                    ray_options=RayOptions(max_retries=1), **QUIET)
    finally:
        MODELS.unregister("vqvae-killed-once")
    assert marker.is_file(), "the first attempt did not run"
    tmp_path = tmp_path / "run"
    assert summary.ok and sorted(summary.finished) == sorted(
        [KILLED, "mnist+fmnist@0.25__other__s0"])
    for cell in summary.finished:
        rows = json.loads(records.cell_path(tmp_path, cell).read_text())
        assert {row["status"] for row in rows} <= {"ok", "undefined"} and len(rows) > 10
        assert (tmp_path / "cells" / cell / "model.pt").is_file()


def test_a_killed_driver_resumes_without_recomputing_a_finished_cell(real_data, tmp_path,
                                                                     ray_cluster, monkeypatch):
    preset = _preset("first", "second")
    real_write = bench.grid.cell.write_cell_result
    written = []

    def driver_dies_after_one(run_dir, result):
        if written:
            raise KeyboardInterrupt  # the driver is killed before writing the second cell
        written.append(result.cell_id)
        real_write(run_dir, result)

    monkeypatch.setattr(bench.grid.cell, "write_cell_result", driver_dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        runner.run_preset(preset, tmp_path, executor="ray", **QUIET)
    first = written[0]
    before = records.cell_path(tmp_path, first).read_bytes()
    monkeypatch.setattr(bench.grid.cell, "write_cell_result", real_write)
    summary = runner.run_preset(preset, tmp_path, executor="ray", **QUIET)
    assert summary.skipped == (first,) and len(summary.finished) == 1
    assert records.cell_path(tmp_path, first).read_bytes() == before


def test_a_second_driver_gets_the_lock_error(tmp_path, ray_cluster):
    with run_lock(tmp_path), pytest.raises(RunLocked, match=str(tmp_path)):
        runner.run_preset(_preset("x"), tmp_path, executor="ray", **QUIET)


@pytest.mark.parametrize("argv, message", [
    (["--cpus-per-cell", "0"], "--cpus-per-cell must be an integer >= 1, got 0"),
    (["--gpus-per-cell", "0.5"], "the models would not use the GPU; add --device cuda"),
    (["--max-retries", "-1"], "--max-retries must be >= 0, got -1"),
    (["--device", "cuda:1"], "--device cuda:1 with --executor ray: Ray gives each cell its GPU "
                             "(CUDA_VISIBLE_DEVICES); use --device cuda"),
])
def test_bad_ray_options_are_one_line(real_data, tmp_path, capsys, argv, message):
    pytest.importorskip("ray")
    status = main(["run", "--preset", "smoke", "--out", str(tmp_path / "run"),
                   "--executor", "ray", *argv])
    assert status == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_ray_options_without_the_ray_executor_are_refused(tmp_path, capsys):
    status = main(["run", "--preset", "smoke", "--out", str(tmp_path / "run"),
                   "--address", "auto"])
    assert status == 2
    assert "--address and --gpus-per-cell need --executor ray" in capsys.readouterr().err


def test_without_ray_installed_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(UserError, match=r"pip install 'rvqvae-bench\[ray\]'"):
        runner.run_preset(_preset("x"), tmp_path, executor="ray", **QUIET)
    assert not tmp_path.joinpath("run.json").exists()


def test_more_cpus_per_cell_than_the_cluster_has_is_refused_before_the_folder(
        real_data, tmp_path, capsys, ray_cluster):
    """``--cpus-per-cell 4`` on 2 CPUs: the error came after run.json and the folder were
    written (the cluster was checked inside the run lock)."""
    status = main(["run", "--preset", "smoke", "--out", str(tmp_path / "run"),
                   "--executor", "ray", "--cpus-per-cell", "4"])
    assert status == 2
    assert capsys.readouterr().err == ("rvqvae-bench: error: local Ray has 2 CPUs, fewer than "
                                       "--cpus-per-cell 4\n")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("argv, message", [
    (["--gpus-per-cell", "inf"], "--gpus-per-cell must be a fraction in (0, 1] or a whole number, "
                                 "got inf"),
    (["--gpus-per-cell", "nan"], "--gpus-per-cell must be a fraction in (0, 1] or a whole number, "
                                 "got nan"),
    (["--max-retries", "1000000000000"], "--max-retries must be an integer in [0, 100], got "
                                         "1000000000000 (each retry reruns a cell whose worker "
                                         "died)"),
])
def test_infinite_and_huge_ray_options_are_one_line(real_data, tmp_path, capsys, argv, message):
    pytest.importorskip("ray")
    status = main(["run", "--preset", "smoke", "--out", str(tmp_path / "run"),
                   "--executor", "ray", *argv])
    assert status == 2
    assert capsys.readouterr().err == f"rvqvae-bench: error: {message}\n"
    assert not (tmp_path / "run").exists()
