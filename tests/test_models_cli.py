"""``rvqvae-bench models``: every registered model with its scores and default options."""

from __future__ import annotations

import dataclasses
import json

import pytest

import rvqvae.models.nsvae  # noqa: F401  (registers vae and nsvae until the package imports it)
from bench.cli import main
from rvqvae.errors import UserError
from rvqvae.models.base import MODELS
from rvqvae.models.nsvae import NSVAEConfig
from rvqvae.models.vae import VAEConfig


def _json_rows(capsys, *names: str) -> list[dict]:
    assert main(["models", *names, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_lists_every_registered_model_with_its_defaults(capsys):
    rows = _json_rows(capsys)
    assert [r["name"] for r in rows] == MODELS.names()
    by_name = {r["name"]: r for r in rows}
    for name, config in (("nsvae", NSVAEConfig()), ("vae", VAEConfig())):
        row = by_name[name]
        expected = json.loads(json.dumps(dataclasses.asdict(config)))  # tuples -> lists
        assert row["defaults"] == expected
        assert row["default_score"] == "kl"
        assert row["score_names"] == ["kl", "neg_elbo_per_dim"]
        assert row["description"] == MODELS.entry(name).description
    assert by_name["nsvae"]["defaults"]["negative_prior_shift"] == 8.0
    assert by_name["nsvae"]["defaults"]["encoder_channels"] == [8, 16, 32, 64, 64]
    assert "negatives" not in by_name["vae"]["defaults"]


def test_names_select_models_in_the_given_order(capsys):
    assert [r["name"] for r in _json_rows(capsys, "vae", "nsvae")] == ["vae", "nsvae"]


def test_table_is_aligned_and_shows_defaults(capsys):
    assert main(["models", "nsvae", "vae"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header, first, second = lines[:3]
    assert header.split()[:2] == ["name", "default"]
    column = header.index("scores")
    assert first.startswith("nsvae") and second.startswith("vae")
    assert first[column:].startswith("kl, neg_elbo_per_dim")
    assert second[column:].startswith("kl, neg_elbo_per_dim")
    text = "\n".join(lines)
    assert "nsvae defaults:" in text and "negative_prior_shift=8," in text
    assert "encoder_channels=(8,16,32,64,64)" in text and "lr=0.0001" in text


def test_unknown_model_is_one_error_line_and_exit_status_2(capsys):
    assert main(["models", "nosuchmodel"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rvqvae-bench: error: model 'nosuchmodel' is unknown; known: ")
    assert "nsvae" in err and "\n" not in err



# -- rvqvae-bench training-speed (its helpers; the numbers themselves are not tested) ------
def test_model_specs_parse_overrides():
    from bench.presets import ModelSpec

    spec = ModelSpec.parse("nsvae:decoder_channels=(32,32):negatives=noise:lr=0.001")
    assert spec.name == "nsvae"
    assert spec.options == {"decoder_channels": (32, 32), "negatives": "noise", "lr": 0.001}
    assert str(spec) == "nsvae:decoder_channels=(32,32):negatives=noise:lr=0.001"
    assert ModelSpec.parse("vae") == ModelSpec("vae", {})
    with pytest.raises(UserError, match=r"^model spec 'vae:lr': 'lr' is not FIELD=VALUE"):
        ModelSpec.parse("vae:lr")


def test_training_speed_writes_csv_and_markdown(real_data, tmp_path):
    import pandas as pd

    from bench.presets import ModelSpec
    from bench.training_speed import run_benchmark

    tiny = ModelSpec("vae", {"encoder_channels": (4, 8), "encoder_strides": (2, 2),
                             "decoder_channels": (4,), "decoder_strides": (4,)})
    broken = ModelSpec("nsvae", {"negatives": "auxiliary"})  # needs negatives: fails alone
    rows = run_benchmark([tiny, broken], n=32, epochs=2, repeats=2, out=tmp_path, log=None)
    assert [r["error"] for r in rows][0] == "" and rows[1]["error"].startswith("UserError: ")
    table = pd.read_csv(tmp_path / "training_speed.csv")
    assert list(table["model"]) == [str(tiny), str(broken)]
    first = table.iloc[0]
    assert first["train_images_per_s"] == pytest.approx(32 * 2 / first["train_s"])
    assert len(first["train_s_all"].split(";")) == 2 and first["device"].startswith("cpu")
    assert table["error"].iloc[1].startswith("UserError: nsvae with negatives='auxiliary'")
    markdown = (tmp_path / "training_speed.md").read_text()
    assert f"| `{tiny}` |" in markdown and "failed: UserError" in markdown
    # each phase's work against the same run's GEMM: a VAE has no prior phase
    assert first["train_gflop"] > 0 and first["prior_gflop"] == 0 and first["sampling_gflop"] > 0
    assert first["gemm_gflops"] > 1
    assert first["train_pct_gemm"] == pytest.approx(
        100 * first["train_gflop"] / first["train_s"] / first["gemm_gflops"])
    assert "## Each phase against the hardware" in markdown


def test_phase_flops_count_what_the_network_computes(real_data):
    """The counted work is the network's: the same per epoch (an epoch more adds the same FLOPs,
    besides a once-per-fit start), a prior phase for a VQ model, and rates per second."""
    import torch

    from bench.presets import ModelSpec
    from bench.training_speed import _phase_flops

    spec = ModelSpec("vqvae", {"epochs": 1, "prior_epochs": 1, "codebook_size": 8,
                               "hidden_channels": 4, "residual_channels": 4, "latent_dim": 4,
                               "batch_size": 16})
    images = torch.rand(32, 1, 28, 28)
    clean = {"contamination": 0.0, "outlier_flags": torch.zeros(32, dtype=torch.bool)}
    one, two, three = (_phase_flops(spec, images, epochs=e, clean=clean, train_s=1.0,
                                    prior_s=1.0) for e in (1, 2, 3))
    assert one["prior_gflop"] > 0  # the PixelCNN prior
    epoch = two["train_gflop"] - one["train_gflop"]
    assert epoch > 0 and three["train_gflop"] - two["train_gflop"] == pytest.approx(epoch,
                                                                                    rel=1e-9)
    assert one["train_gflops"] == one["train_gflop"]  # over one second


def test_training_speed_command_checks_models_and_numbers_first(tmp_path, capsys):
    assert main(["training-speed", "--models", "nosuch", "--out", str(tmp_path)]) == 2
    assert "model 'nosuch' is unknown" in capsys.readouterr().err
    assert main(["training-speed", "--repeats", "0", "--out", str(tmp_path)]) == 2
    assert "--repeats must be >= 1, got 0" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_run_takes_model_options_on_the_command_line(real_data, tmp_path, capsys):
    """``run --model NAME:field=value`` works as in ``training-speed`` (it was "unknown model");
    the spec's text is the model's label, so the plain model and the variant are two models."""
    import json

    out = tmp_path / "run"
    argv = ["run", "--scenario", "mnist+fmnist@0.2", "--model", "vqvae:epochs=1:prior_epochs=1",
            "--seeds", "0", "--train-size", "64", "--n-samples", "16", "--out", str(out),
            "--quiet"]
    assert main(argv) == 0
    cells = sorted(p.name for p in (out / "cells").glob("*.json"))
    assert cells == ["mnist+fmnist@0.2__vqvae_epochs_1_prior_epochs_1__s0.json"]
    record = json.loads((out / "cells" / cells[0]).read_text())[0]
    assert record["model"] == "vqvae:epochs=1:prior_epochs=1"
    capsys.readouterr()
    assert main(["run", "--scenario", "mnist+fmnist@0.2", "--model", "vqvae:epoch=1",
                 "--out", str(tmp_path / "bad")]) == 2
    assert capsys.readouterr().err.strip().startswith(
        "rvqvae-bench: error: model 'vqvae' has no option(s) epoch; options: ")
    assert not (tmp_path / "bad").exists()


def test_a_preset_runs_a_subset_of_its_models_and_only_the_chosen_metric_groups(real_data,
                                                                                 tmp_path):
    """``--preset P --model LABEL`` keeps those models of P; ``--metrics health`` computes only
    the health group (a training-health study) and the records still carry the health verdict."""
    import json

    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", "--model", "vqvae", "--metrics", "health",
                 "--out", str(out), "--quiet"]) == 0
    cells = sorted(p.name for p in (out / "cells").glob("*.json"))
    assert cells == ["mnist+fmnist@0.2__vqvae__s0.json"]
    rows = json.loads((out / "cells" / cells[0]).read_text())
    assert {r["metric"] for r in rows} == {
        "degenerate", "health_recon_vs_mean_image", "health_sample_spread", "health_loss_drop",
        # the cell's cost per phase
        "seconds_fit", "seconds_prior", "seconds_sampling", "seconds_metrics_health"}
    seconds = {r["metric"]: r["value"] for r in rows if r["metric"].startswith("seconds_")}
    assert 0 < seconds["seconds_prior"] < seconds["seconds_fit"]
    (health,) = {r["health"] for r in rows}  # one verdict per cell (smoke's 1 epoch: poor)
    assert health == "ok" or health.startswith("degenerate: ")
    run_info = json.loads((out / "run.json").read_text())
    assert run_info["preset"]["metrics"] == ["health"]
