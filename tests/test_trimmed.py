"""Trimmed-loss (ITLM) and oracle VQ-VAE: which examples each epoch trains on."""

from __future__ import annotations

import pytest
import torch

from rvqvae.errors import UserError
from rvqvae.models.base import GenerativeModel
from rvqvae.models.oracle import OracleVQVAE
from rvqvae.models.prior import GatedPixelCNN
from rvqvae.models.trimmed import TrimmedVQVAE
from rvqvae.models.vqvae import VQVAE

TINY = dict(hidden_channels=8, residual_channels=4, residual_blocks=1, latent_dim=4,
            codebook_size=8, prior_channels=8, prior_layers=1, prior_kernel=3, epochs=2,
            prior_epochs=1, batch_size=16)


def _images(n=40, seed=0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def _flags(n=40) -> torch.Tensor:
    return torch.arange(n) % 4 == 1


def _same_state(a, b) -> bool:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(x, y) for x, y in pairs)


def test_trimmed_trains_on_the_lowest_loss_examples():
    """With lr=0 and no restarts the model never changes, so the set chosen at the start of the
    last epoch is exactly the n - round(eps n) lowest reconstruction errors of the final model."""
    model = TrimmedVQVAE(**{**TINY, "epochs": 3}, lr=0.0, dead_code_restart=False)
    images = _images()
    history = model.fit(images, seed=0, contamination=0.15)  # round(0.15 * 40) = 6
    assert "split_outliers" not in history[0]  # warm-up epoch trains on everything
    assert [h["split_outliers"] for h in history[1:]] == [6, 6]
    losses = model.per_example_recon(images)
    expected = torch.sort(losses, stable=True).indices[:34]
    assert torch.equal(torch.sort(model.kept).values, torch.sort(expected).values)
    assert losses[model.kept].max() <= losses[~torch.isin(torch.arange(40), model.kept)].min()


def test_trimmed_reports_split_quality_only_from_flags_it_does_not_train_on():
    images, flags = _images(), _flags()
    monitored, plain = TrimmedVQVAE(**TINY), TrimmedVQVAE(**TINY)
    history = monitored.fit(images, seed=0, contamination=0.25, outlier_flags=flags)
    plain.fit(images, seed=0, contamination=0.25)
    assert _same_state(monitored, plain)
    assert 0 <= history[-1]["split_precision"] <= 1 and 0 <= history[-1]["split_recall"] <= 1


def test_trimmed_without_trimming_epochs_is_a_vqvae():
    images = _images()
    trimmed, plain = TrimmedVQVAE(**TINY, warmup_epochs=5), VQVAE(**TINY)
    assert trimmed.fit(images, seed=1, contamination=0.2) == plain.fit(images, seed=1)
    assert _same_state(trimmed, plain)


def test_oracle_with_kept_epochs_equals_a_vqvae_trained_on_the_clean_subset():
    images, flags = _images(), _flags()
    oracle, clean = OracleVQVAE(**TINY, epoch_length="kept"), VQVAE(**TINY)
    assert oracle.fit(images, seed=2, outlier_flags=flags) == clean.fit(images[~flags], seed=2)
    assert _same_state(oracle, clean)


@pytest.mark.parametrize(("epoch_length", "steps"), [("full", 3), ("kept", 2)])
def test_models_that_drop_examples_take_the_full_sets_steps_per_epoch(epoch_length, steps):
    """40 images, batch 16: 3 steps an epoch; 30 kept (oracle: 10 flagged; trimmed: eps 0.25
    after its warm-up epoch) give 2 steps a pass. 'full' tops the epoch up to the 40 examples."""
    images, flags = _images(), _flags()
    assert [h["steps"] for h in VQVAE(**TINY).fit(images, seed=0)] == [3, 3]
    oracle = OracleVQVAE(**TINY, epoch_length=epoch_length)
    assert [h["steps"] for h in oracle.fit(images, seed=0, outlier_flags=flags)] == [steps] * 2
    trimmed = TrimmedVQVAE(**TINY, epoch_length=epoch_length)
    history = trimmed.fit(images, seed=0, contamination=0.25)
    assert [h["steps"] for h in history] == [3, steps]


def test_a_full_epoch_is_whole_shuffled_passes_over_the_kept_examples_cut_at_n():
    model, examples = OracleVQVAE(**TINY), torch.arange(0, 60, 2)  # 30 kept of 40
    order = model._epoch_order(examples, 40, torch.Generator().manual_seed(0))
    assert order.shape == (40,)
    assert torch.equal(torch.sort(order[:30]).values, examples)  # the first pass is complete
    assert bool(torch.isin(order[30:], examples).all())
    assert len(set(order[30:].tolist())) == 10  # the second pass repeats no example
    # nothing dropped: one shuffled pass, the order a plain VQ-VAE draws from the same generator
    everything = torch.arange(40)
    plain = VQVAE(**TINY)._epoch_order(everything, 40, torch.Generator().manual_seed(5))
    assert torch.equal(model._epoch_order(everything, 40, torch.Generator().manual_seed(5)), plain)


def test_epoch_length_must_be_a_known_choice():
    with pytest.raises(UserError, match="epoch_length='half' is not supported; choose one of "
                                        "full, kept"):
        OracleVQVAE(**TINY, epoch_length="half")


def test_oracle_needs_flags_and_inliers():
    message = r"oracle-vqvae needs the true outlier flags: pass outlier_flags to fit\(\)"
    with pytest.raises(UserError, match=message):
        OracleVQVAE(**TINY).fit(_images())
    with pytest.raises(UserError, match="every training image is flagged as an outlier"):
        OracleVQVAE(**TINY).fit(_images(4), outlier_flags=torch.ones(4, dtype=torch.bool))


@pytest.mark.parametrize("cls", [TrimmedVQVAE, OracleVQVAE])
def test_determinism_and_round_trip(cls, tmp_path):
    images, flags = _images(), _flags()
    model, twin, other = cls(**TINY), cls(**TINY), cls(**TINY)
    for m, seed in ((model, 0), (twin, 0), (other, 1)):
        m.fit(images, seed=seed, contamination=0.25, outlier_flags=flags)
    assert _same_state(model, twin) and not _same_state(model, other)
    model.save(tmp_path / "m.pt")
    loaded = GenerativeModel.load(tmp_path / "m.pt")
    assert type(loaded) is cls and _same_state(model, loaded)
    assert torch.equal(loaded.outlier_score(images), model.outlier_score(images))
    assert torch.equal(loaded.sample(2, seed=3), model.sample(2, seed=3))


@pytest.mark.parametrize("cls", [TrimmedVQVAE, OracleVQVAE])
def test_loss_falls_on_a_small_real_scenario(cls, real_data):
    from bench.scenarios import get_scenario

    data = get_scenario("mnist+fmnist@0.2").with_(train_size=500).build(0)
    history = cls(epochs=3, prior_epochs=1).fit(
        data.train_images, seed=0, contamination=0.2, outlier_flags=data.train_is_outlier)
    assert history[-1]["loss"] < history[0]["loss"]


@pytest.mark.parametrize(("prior_epoch_length", "batches"),
                         [("kept", [16, 14] * 2), ("full", [16, 16, 8] * 2)])
def test_the_prior_of_a_model_that_drops_examples_can_take_the_full_sets_steps(
        prior_epoch_length, batches, monkeypatch):
    """The oracle keeps 30 of 40 codes: at prior batch 16 a pass is 16 + 14; "full" epochs take
    40 codes (16 + 16 + 8), as many steps as a model that keeps everything."""
    sizes: list[int] = []
    forward = GatedPixelCNN.forward

    def counted(module, codes):
        if module.training:
            sizes.append(codes.shape[0])
        return forward(module, codes)

    monkeypatch.setattr(GatedPixelCNN, "forward", counted)
    oracle = OracleVQVAE(**{**TINY, "prior_epochs": 2}, prior_batch_size=16,
                         prior_epoch_length=prior_epoch_length)
    oracle.fit(_images(), seed=0, outlier_flags=_flags())
    assert sizes == batches

def test_full_prior_epochs_change_nothing_when_nothing_is_dropped():
    images = _images()
    kept, full = VQVAE(**TINY), VQVAE(**TINY, prior_epoch_length="full")
    assert kept.fit(images, seed=3) == full.fit(images, seed=3)
    assert kept.prior_history == full.prior_history
    assert _same_state(kept, full)


def test_prior_epoch_length_must_be_a_known_choice():
    with pytest.raises(UserError, match="prior_epoch_length='half' is not supported; choose one "
                                        "of kept, full"):
        VQVAE(**TINY, prior_epoch_length="half")
