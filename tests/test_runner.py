"""The runner on real data: records, artefacts, failure isolation, resume after a kill."""

import json

import pytest
import torch

import bench
import bench.grid.cell
import bench.grid.runner as runner
from bench.cli import main
from bench.metrics.catalog import is_timing
from bench.presets import ModelSpec, Preset
from rvqvae.models import MODELS
from rvqvae.models.vqvae import VQVAE

TINY_VQ = {"epochs": 1, "prior_epochs": 1, "codebook_size": 16, "hidden_channels": 8,
           "residual_channels": 8, "latent_dim": 8}


def _preset(*models: ModelSpec) -> Preset:
    return Preset(name="test", description="tiny", scenarios=("mnist+fmnist@0.25",),
                  models=models, train_size=64, test_size=32, clean_test_size=64, n_samples=32)


@MODELS.register("failing-vqvae", replace=True)
class FailingVQVAE(VQVAE):
    """A VQ-VAE whose training always raises (a cell that fails for a reason found late)."""

    def fit(self, images, **kwargs):
        raise RuntimeError("training exploded")


def test_a_failing_cell_is_recorded_and_the_grid_goes_on(real_data, tmp_path):
    preset = _preset(ModelSpec("failing-vqvae", TINY_VQ, "broken"),
                     ModelSpec("vqvae", TINY_VQ))
    summary = runner.run_preset(preset, tmp_path, progress=False, log=lambda line: None)
    assert summary.failed == ("mnist+fmnist@0.25__broken__s0",)
    assert summary.finished == ("mnist+fmnist@0.25__vqvae__s0",)

    frame = bench.load_results(tmp_path)
    broken = frame[frame.model == "broken"]
    assert list(broken.metric) == ["cell"] and list(broken.status) == ["failed"]
    assert broken.error.iloc[0]  # the error line is kept
    assert (tmp_path / "cells" / "mnist+fmnist@0.25__broken__s0.traceback.txt").is_file()

    good = frame[frame.model == "vqvae"].set_index("metric")
    assert good.loc["auroc_transductive_recon", "status"] == "ok"
    assert 0.0 <= good.loc["auroc_transductive_recon", "value"] <= 1.0
    assert good.loc["fid_domain_32", "status"] == "ok"
    assert good.loc["kid_domain_32_std", "status"] == "undefined"  # 32 samples, subsets of 32
    assert good.loc["kid_domain_32_std", "error"].startswith("every KID subset holds all 32")
    assert good.loc["recon_mse_clean_test", "value"] > 0
    assert set(good.epsilon) == {0.25} and set(good.outlier) == {"fmnist"}
    assert good.git_sha.iloc[0] and json.loads(good.versions.iloc[0])["torch"]


def test_cell_artefacts_feed_the_report(real_data, tmp_path):
    lines = []
    runner.run_preset(_preset(ModelSpec("vqvae", TINY_VQ)), tmp_path, progress=False,
                      log=lines.append)
    # evaluation shows progress even without per-epoch lines: one line per metric group
    prefix = "[1/1] mnist+fmnist@0.25__vqvae__s0: "
    for group in ("detection", "generation", "outlier_mode", "reconstruction"):
        assert any(line.startswith(f"{prefix}metrics {group} (domain): ") and line.endswith(" s")
                   for line in lines), group
    cell = tmp_path / "cells" / "mnist+fmnist@0.25__vqvae__s0"
    samples = torch.load(cell / "samples.pt", weights_only=True)
    assert samples.shape == (32, 1, 28, 28) and 0 <= samples.min() and samples.max() <= 1
    scores = torch.load(cell / "scores.pt", weights_only=True)
    assert set(scores) == {"transductive", "inductive"}
    assert int(scores["transductive"]["is_outlier"].sum()) == 16  # round(0.25 * 64)
    assert len(json.loads((cell / "history.json").read_text())) == 1
    assert (cell / "model.pt").is_file()


def test_resume_after_a_kill_recomputes_no_finished_cell(real_data, tmp_path, monkeypatch):
    preset = _preset(ModelSpec("vqvae", TINY_VQ, "first"), ModelSpec("vqvae", TINY_VQ, "second"))
    real_run_cell = bench.grid.cell._fit_and_evaluate
    calls = []

    def killed_on_second(*args, **kwargs):
        calls.append(args[2].spec.display)
        if args[2].spec.display == "second":
            raise KeyboardInterrupt  # the process dies mid-grid
        return real_run_cell(*args, **kwargs)

    monkeypatch.setattr(bench.grid.cell, "_fit_and_evaluate", killed_on_second)
    with pytest.raises(KeyboardInterrupt):
        runner.run_preset(preset, tmp_path, progress=False, log=lambda line: None)
    assert sorted(p.name for p in (tmp_path / "cells").glob("*.json")) == [
        "mnist+fmnist@0.25__first__s0.json"]
    first_records = (tmp_path / "cells" / "mnist+fmnist@0.25__first__s0.json").read_text()

    calls.clear()
    monkeypatch.setattr(bench.grid.cell, "_fit_and_evaluate",
                        lambda *a, **k: calls.append(a[2].spec.display) or real_run_cell(*a, **k))
    summary = runner.run_preset(preset, tmp_path, progress=False, log=lambda line: None)
    assert calls == ["second"]
    assert summary.skipped == ("mnist+fmnist@0.25__first__s0",)
    assert summary.finished == ("mnist+fmnist@0.25__second__s0",)
    assert (tmp_path / "cells" / "mnist+fmnist@0.25__first__s0.json").read_text() == first_records


def test_same_seed_gives_identical_numbers(real_data, tmp_path):
    preset = _preset(ModelSpec("vqvae", TINY_VQ))
    for run in ("a", "b"):
        runner.run_preset(preset, tmp_path / run, progress=False, log=lambda line: None)
    a, b = (bench.load_results(tmp_path / run).set_index("metric").value for run in ("a", "b"))
    a, b = (side[[not is_timing(m) for m in side.index]] for side in (a, b))
    assert a.round(10).equals(b.round(10))


@pytest.mark.parametrize("argv, message", [
    (["--scenario", "mnist+fmnist@0.2", "--model", "nope"], "model 'nope' is unknown; known:"),
    (["--scenario", "nowhere@0.2", "--model", "vqvae"], "scenario 'nowhere@0.2' is unknown"),
    (["--scenario", "mnist+fmnist@0.2"], "--scenario needs --model"),
    (["--preset", "nope"], "preset 'nope' is unknown; known: ci, nsvae-paper, paper"),
    (["--preset", "ci", "--model", "rvqvae", "nope"],
     "--model nope is not a model of preset 'ci'; its models: vqvae, rvqvae,"),
    (["--preset", "ci", "--metrics", "health", "nope"], "metric 'nope' is unknown; known:"),
])
def test_bad_grids_fail_before_any_cell_with_one_line(tmp_path, capsys, argv, message):
    assert main(["run", *argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()
