"""RVQ-VAE: weighted distances, warm-up routing, the per-epoch split, inlier-only generation,
independence from the monitoring flags, determinism, persistence and a short real-data run."""

from __future__ import annotations

import math

import pytest
import torch

from rvqvae.errors import UserError
from rvqvae.models.base import GenerativeModel
from rvqvae.models.outlier_split import (
    estimated_outlier_count,
    score_auroc,
    split_by_score,
    split_quality,
    top_scores_mask,
)
from rvqvae.models.rvqvae import RVQVAE

TINY = dict(hidden_channels=8, residual_channels=4, residual_blocks=1, latent_dim=4,
            codebook_size=8, outlier_codebook_size=4, prior_channels=8, prior_layers=1,
            prior_kernel=3, epochs=2, prior_epochs=1, batch_size=16, warmup_epochs=1)


def _images(n=40, seed=0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def _flags(n=40) -> torch.Tensor:
    return torch.arange(n) % 5 == 0


def _same_state(a, b) -> bool:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(x, y) for x, y in pairs)


def _brute_force(latents, codebook, weighting, eps):
    x, e = latents.double(), codebook.double()
    r = x[:, None, :] - e[None, :, :]  # N x K x D
    if weighting == "coordinate":
        var = e.var(0, unbiased=False)
        d = (r.square() / (var + eps)).sum(-1)
    elif weighting == "direction":
        cov = (e - e.mean(0)).T @ (e - e.mean(0)) / e.shape[0]
        norm2 = r.square().sum(-1)
        d = norm2 / (torch.einsum("nkd,de,nke->nk", r, cov, r) / norm2 + eps)
    else:
        d = r.square().sum(-1)
    return d.min(1)


@pytest.mark.parametrize("weighting", ["coordinate", "direction", "none"])
@pytest.mark.parametrize("which", ["inlier", "outlier"])
def test_weighted_distance_matches_float64_brute_force(weighting, which):
    model = RVQVAE(**TINY, weighting=weighting, weight_epsilon=1e-3)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model.inlier_codebook.weight.copy_(torch.randn(8, 4, generator=generator))
        model.outlier_codebook.weight.copy_(torch.randn(4, 4, generator=generator) * 3)
    latents = torch.randn(300, 4, generator=generator) * 2
    book = model.inlier_codebook if which == "inlier" else model.outlier_codebook
    indices, distances = model.codebook_search(latents, which)
    expected_distances, expected_indices = _brute_force(
        latents, book.weight.detach(), weighting, 1e-3)
    assert torch.equal(indices, expected_indices)
    torch.testing.assert_close(distances.double(), expected_distances, rtol=1e-4, atol=1e-5)


def test_nearest_warm_up_quantises_each_latent_with_its_nearest_codeword_over_both_codebooks():
    model = RVQVAE(**TINY, first_split="nearest")
    images = _images(6)
    with torch.no_grad():
        latents = model.encoder(images).permute(0, 2, 3, 1).reshape(-1, 4)
        model.inlier_codebook.weight.copy_(latents[0:96:12] + 1e-3)  # spread over the latents
        model.outlier_codebook.weight.copy_(latents[1:96:24] - 1e-3)
    codes = model.training_losses(images)["codes"]
    inlier, d_in = model.codebook_search(latents, "inlier")
    outlier, d_out = model.codebook_search(latents, "outlier")
    expected = torch.where(d_out < d_in, outlier + 8, inlier)
    assert torch.equal(codes, expected)
    assert (codes >= 8).any() and (codes < 8).any()


def test_after_the_split_each_example_uses_only_its_own_codebook():
    model = RVQVAE(**TINY)
    images = _images()
    model.fit(images, seed=0, contamination=0.25)
    ids = torch.arange(40)
    codes = model.training_losses(images, ids)["codes"].view(40, -1)
    outliers = model.outlier_set
    assert torch.all(codes[outliers] >= 8) and torch.all(codes[~outliers] < 8)


def test_each_epoch_marks_exactly_the_top_fraction_of_split_scores():
    model = RVQVAE(**{**TINY, "epochs": 3}, split_momentum=0.0)  # ranks by this epoch's scores
    images = _images()
    history = model.fit(images, seed=0, contamination=0.13)  # round(0.13 * 40) = 5
    assert [h["split_outliers"] for h in history] == [5, 5, 5]
    # nothing changes the autoencoder after the last split, so its scores can be recomputed
    scores = model.split_scores(images)
    assert torch.equal(model.outlier_set, top_scores_mask(scores, 5))
    assert scores[model.outlier_set].min() >= scores[~model.outlier_set].max()


def test_top_scores_mask_breaks_ties_towards_the_lower_index():
    scores = torch.tensor([1.0, 3.0, 2.0, 3.0, 2.0, 2.0])
    assert top_scores_mask(scores, 3).tolist() == [False, True, True, True, False, False]
    assert split_by_score(scores, contamination=0.5).sum() == 3
    assert split_by_score(scores, contamination=0.0).sum() == 0


def test_otsu_estimate_finds_two_groups():
    generator = torch.Generator().manual_seed(0)
    scores = torch.cat(
        [torch.randn(80, generator=generator), 10 + torch.randn(20, generator=generator)])
    assert estimated_outlier_count(scores) == 20
    assert estimated_outlier_count(torch.ones(10)) == 0
    assert split_by_score(scores, contamination=None).sum() == 20
    with pytest.raises(UserError, match="estimate='median' is not supported; choose one of otsu"):
        estimated_outlier_count(scores, "median")


def test_split_quality():
    predicted = torch.tensor([True, True, False, False])
    truth = torch.tensor([True, False, True, True])
    assert split_quality(predicted, truth) == {"split_precision": 0.5, "split_recall": 1 / 3}
    assert split_quality(predicted, None) == {}
    scores = torch.tensor([0.9, 0.75, 0.8, 0.7])  # 2 of 3 outliers above the inlier
    assert split_quality(predicted, truth, scores)["split_auroc"] == pytest.approx(2 / 3)


def test_score_auroc_matches_scikit_learn_with_ties_and_large_scores():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    generator = torch.Generator().manual_seed(0)
    flags = torch.rand(300, generator=generator) < 0.3
    scores = torch.round(torch.randn(300, generator=generator) + flags, decimals=1) * 100 + 50
    expected = sklearn_metrics.roc_auc_score(flags.numpy(), scores.numpy())
    assert score_auroc(scores, flags) == pytest.approx(expected, abs=1e-6)
    assert score_auroc(-scores, flags) == pytest.approx(1 - expected, abs=1e-6)  # inverted split
    assert math.isnan(score_auroc(scores, torch.zeros(300, dtype=torch.bool)))
    assert math.isnan(score_auroc(scores, torch.ones(300, dtype=torch.bool)))


def test_config_contamination_overrides_fit_and_estimate_is_used_without_either():
    images = _images()
    fixed = RVQVAE(**TINY, contamination=0.1).fit(images, seed=0, contamination=0.3)
    assert fixed[-1]["split_outliers"] == 4
    estimated = RVQVAE(**TINY).fit(images, seed=0)
    assert 0 <= estimated[-1]["split_outliers"] <= 20  # Otsu, capped at half the set


def test_true_flags_only_monitor_the_split():
    images, flags = _images(), _flags()
    with_flags, without = RVQVAE(**TINY), RVQVAE(**TINY)
    history = with_flags.fit(images, seed=0, contamination=0.2, outlier_flags=flags)
    plain = without.fit(images, seed=0, contamination=0.2)
    assert _same_state(with_flags, without)
    assert torch.equal(with_flags.outlier_set, without.outlier_set)
    hits = float((with_flags.outlier_set & flags).sum())
    assert history[-1]["split_precision"] == hits / 8
    assert history[-1]["split_recall"] == hits / 8
    # split_auroc: the AUROC of what the split ranked by, here the smoothed ranks (split_momentum)
    assert history[-1]["split_auroc"] == score_auroc(with_flags._ranks, flags)
    assert all(0 <= h["split_auroc"] <= 1 for h in history)
    assert "split_precision" not in plain[-1] and "split_auroc" not in plain[-1]
    assert [{k: v for k, v in h.items() if not k.startswith("split_")} for h in history] == \
        [{k: v for k, v in h.items() if not k.startswith("split_")} for h in plain]


def test_samples_decode_inlier_codewords_only():
    model = RVQVAE(**TINY)
    model.fit(_images(), seed=0, contamination=0.2)
    before = model.sample(6, seed=1)
    seen = []
    hook = model.decoder.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    with torch.no_grad():
        model.outlier_codebook.weight.fill_(float("nan"))
    after = model.sample(6, seed=1)
    hook.remove()
    assert torch.isfinite(after).all() and torch.equal(before, after)
    latents = torch.cat(seen).permute(0, 2, 3, 1).reshape(-1, 4)
    matches = latents[:, None, :] == model.inlier_codebook.weight.detach()[None, :, :]
    assert torch.all(matches.all(-1).any(1))  # every decoded latent IS an inlier codeword


def test_prior_is_trained_on_the_inlier_set_only(monkeypatch):
    model = RVQVAE(**TINY)
    images = _images()
    captured = {}
    fit_prior = type(model.prior).fit

    def spy(prior, codes, **kwargs):
        captured["codes"] = codes
        return fit_prior(prior, codes, **kwargs)

    monkeypatch.setattr(type(model.prior), "fit", spy)
    model.fit(images, seed=0, contamination=0.25)
    inliers = images[~model.outlier_set]
    assert captured["codes"].shape[0] == 30
    assert torch.equal(captured["codes"], model.encode_codes(inliers))


def test_scores_determinism_and_round_trip(tmp_path):
    images = _images()
    model, twin, other = RVQVAE(**TINY), RVQVAE(**TINY), RVQVAE(**TINY)
    model.fit(images, seed=5, contamination=0.2)
    twin.fit(images, seed=5, contamination=0.2)
    other.fit(images, seed=6, contamination=0.2)
    assert _same_state(model, twin) and not _same_state(model, other)
    scores = model.outlier_scores(images)
    assert set(scores) == {"split", "recon", "prior_nll"}
    assert torch.equal(model.outlier_score(images), scores["split"])
    model.save(tmp_path / "rvq.pt")
    loaded = GenerativeModel.load(tmp_path / "rvq.pt")
    assert type(loaded) is RVQVAE and loaded.config == model.config
    for key, value in loaded.outlier_scores(images).items():
        assert torch.equal(value, scores[key]), key
    assert torch.equal(loaded.sample(3, seed=0), model.sample(3, seed=0))


def test_option_errors():
    with pytest.raises(UserError, match="weighting='mahalanobis' is not supported"):
        RVQVAE(weighting="mahalanobis")
    with pytest.raises(UserError, match="warmup_epochs must be >= 1"):
        RVQVAE(warmup_epochs=0)
    with pytest.raises(UserError, match="first_split='random' is not supported"):
        RVQVAE(first_split="random")
    with pytest.raises(UserError, match="split_momentum must be in"):
        RVQVAE(split_momentum=1.0)


def test_loss_falls_and_split_is_reported_on_a_small_real_scenario(real_data):
    from bench.scenarios import get_scenario

    data = get_scenario("mnist+fmnist@0.2").with_(train_size=500).build(0)
    model = RVQVAE(epochs=3, prior_epochs=1)
    history = model.fit(data.train_images, seed=0, contamination=0.2,
                        outlier_flags=data.train_is_outlier)
    assert history[-1]["loss"] < history[0]["loss"]
    assert "split_outliers" not in history[0]  # warm-up: 2 epochs by default
    assert all(h["split_outliers"] == 100 for h in history[1:])
    assert 0 <= history[-1]["split_precision"] <= 1


def test_per_epoch_weights_come_from_the_data_initialised_codebooks(monkeypatch):
    """weight_update="epoch" freezes the weights at their first use in the epoch, which on
    epoch 0 must come after the codebooks are initialised from data (not from their random
    U(-1/K, 1/K) start, whose variance differs by orders of magnitude)."""
    from rvqvae.models.rvqvae import RVQVAE

    images = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    model = RVQVAE(epochs=1, prior_epochs=0, weight_update="epoch", batch_size=32)
    seen = []
    train_epoch = model._train_epoch

    def checked(*args, **kwargs):
        frozen_inlier, frozen_outlier = model.distance_parameters()
        seen.append(model._epoch_distances is not None)
        eps = model.config.weight_epsilon
        torch.testing.assert_close(frozen_inlier, 1 / (model.inlier_codebook.variances() + eps))
        torch.testing.assert_close(frozen_outlier, 1 / (model.outlier_codebook.variances() + eps))
        return train_epoch(*args, **kwargs)

    monkeypatch.setattr(model, "_train_epoch", checked)
    model.fit(images, seed=0, contamination=0.25)
    assert seen == [True]
