"""RVQ-VAE's first split from a model of the majority, the outlier codebook's initialisation,
the other split scores and the smoothing of the split over epochs (rvqvae.models.split_rules)."""

from __future__ import annotations

import pytest
import torch

from rvqvae.models.outlier_split import top_scores_mask
from rvqvae.models.rvqvae import RVQVAE
from rvqvae.models.split_rules import kmeans_plus_plus, median_distance, smoothed_ranks
from rvqvae.models.vq_tensors import to_rows

TINY = dict(hidden_channels=8, residual_channels=4, residual_blocks=1, latent_dim=4,
            codebook_size=8, outlier_codebook_size=4, prior_channels=8, prior_layers=1,
            prior_kernel=3, epochs=2, prior_epochs=1, batch_size=16, warmup_epochs=1)


def _images(n=40, seed=0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_majority_warm_up_quantises_with_the_inlier_codebook_only():
    model = RVQVAE(**TINY)  # first_split="majority" is the default
    images = _images(6)
    with torch.no_grad():
        latents = model.encoder(images).permute(0, 2, 3, 1).reshape(-1, 4)
        model.outlier_codebook.weight.copy_(latents[:4])  # would win every tie-free search
    codes = model.training_losses(images)["codes"]
    inlier, _ = model.codebook_search(latents, "inlier")
    assert torch.equal(codes, inlier)


def _first_split_model(**options):
    """A model fitted for one (warm-up) epoch: its outlier set is the first split."""
    model = RVQVAE(**{**TINY, "epochs": 1, "prior_epochs": 0, **options})
    images = _images()
    history = model.fit(images, seed=0, contamination=0.25)
    return model, images, history


def test_first_split_is_the_top_median_distance_of_the_warmed_up_latents():
    model, images, history = _first_split_model(orientation="spread")
    with torch.no_grad():
        expected = top_scores_mask(median_distance(model.encoder(images)), 10)
    assert history[0]["split_outliers"] == 10
    assert torch.equal(model.outlier_set, expected)


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_outlier_codebook_starts_from_the_first_outlier_set_latents(init):
    model, images, _ = _first_split_model(outlier_init=init)
    with torch.no_grad():
        outlier_latents = to_rows(model.encoder(images[model.outlier_set]))
    codewords = model.outlier_codebook.weight.detach()
    is_latent = (codewords[:, None, :] == outlier_latents[None]).all(-1).any(1)
    assert is_latent.all()


def test_inlier_codebook_starts_from_the_first_inlier_set_latents():
    model, images, _ = _first_split_model()
    with torch.no_grad():
        inlier_latents = to_rows(model.encoder(images[~model.outlier_set]))
    codewords = model.inlier_codebook.weight.detach()
    assert (codewords[:, None, :] == inlier_latents[None]).all(-1).any(1).all()


def test_keep_leaves_the_codebooks_as_warm_up_left_them():
    kept, _, _ = _first_split_model(outlier_init="keep")
    only_outlier, _, _ = _first_split_model(outlier_init="random", reinit_inlier_codebook=False)
    both, _, _ = _first_split_model(outlier_init="random")
    assert torch.equal(kept.inlier_codebook.weight, only_outlier.inlier_codebook.weight)
    assert not torch.equal(kept.outlier_codebook.weight, only_outlier.outlier_codebook.weight)
    assert not torch.equal(kept.inlier_codebook.weight, both.inlier_codebook.weight)


@pytest.mark.parametrize("score", ["recon", "inlier_distance"])
def test_other_orientation_rules_split_on_their_score(score):
    # the inlier codebook as the score saw it: not re-initialised after the split
    model, images, _ = _first_split_model(orientation=score, reinit_inlier_codebook=False)
    assert torch.equal(model.outlier_set, top_scores_mask(model.split_scores(images, score), 10))


def test_one_sided_split_scores():
    model, images, _ = _first_split_model()
    torch.testing.assert_close(model.split_scores(images, "recon"), model.per_example_recon(images))
    with torch.no_grad():
        latents = to_rows(model.encoder(images))
    _, d_in = model.codebook_search(latents, "inlier")
    torch.testing.assert_close(model.split_scores(images, "inlier_distance"),
                               d_in.view(40, -1).mean(1))


def test_median_distance_ranks_the_minority_cluster_highest():
    generator = torch.Generator().manual_seed(0)
    inliers = torch.randn(60, 3, 2, 2, generator=generator)
    outliers = 4 + torch.randn(40, 3, 2, 2, generator=generator)
    scores = median_distance(torch.cat([inliers, outliers]))
    assert top_scores_mask(scores, 40).tolist() == [False] * 60 + [True] * 40


def test_kmeans_plus_plus_is_seeded_and_spreads_over_clusters():
    points = torch.cat([torch.zeros(50, 2), torch.full((3, 2), 10.0), torch.full((2, 2), -10.0)])
    picks = kmeans_plus_plus(points, 3, torch.Generator().manual_seed(0))
    again = kmeans_plus_plus(points, 3, torch.Generator().manual_seed(0))
    assert torch.equal(picks, again)
    assert sorted(picks[:, 0].tolist()) == [-10.0, 0.0, 10.0]  # one per cluster
    same = kmeans_plus_plus(torch.ones(5, 2), 3, torch.Generator().manual_seed(0))
    assert torch.equal(same, torch.ones(3, 2))  # all distances 0: uniform picks, no error


def test_smoothed_ranks():
    scores = torch.tensor([0.5, 3.0, 1.0, 1.0, 2.0])
    ranks = smoothed_ranks(scores, None, 0.5)
    assert ranks.tolist() == [0.0, 1.0, 0.25, 0.25, 0.75]
    flipped = smoothed_ranks(-scores, ranks, 0.5)
    assert flipped.tolist() == pytest.approx([0.5, 0.5, 0.375, 0.375, 0.5])  # ties: lowest rank


def test_split_momentum_keeps_part_of_the_previous_split():
    images = _images()
    plain = RVQVAE(**{**TINY, "epochs": 3, "prior_epochs": 0})
    smooth = RVQVAE(**{**TINY, "epochs": 3, "prior_epochs": 0, "split_momentum": 0.9})
    plain.fit(images, seed=0, contamination=0.25)
    smooth.fit(images, seed=0, contamination=0.25)
    assert int(smooth.outlier_set.sum()) == 10
    # the momentum split ranks by the smoothed ranks, which the last scores alone do not give
    assert torch.equal(smooth.outlier_set, top_scores_mask(smooth._ranks, 10))


def test_true_flags_only_monitor_every_first_split_option():
    images, flags = _images(), torch.arange(40) % 4 == 0
    for options in ({}, {"orientation": "spread", "split_momentum": 0.5}, {"orientation": "mass"},
                    {"outlier_init": "random", "split_score": "recon"}):
        a = RVQVAE(**{**TINY, "epochs": 3, "prior_epochs": 0, **options})
        b = RVQVAE(**{**TINY, "epochs": 3, "prior_epochs": 0, **options})
        a.fit(images, seed=1, contamination=0.25, outlier_flags=flags)
        b.fit(images, seed=1, contamination=0.25)
        pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
        assert all(torch.equal(x, y) for x, y in pairs)
        assert torch.equal(a.outlier_set, b.outlier_set)


def test_contamination_source_estimate_ignores_the_given_epsilon():
    images = _images()
    given = RVQVAE(**TINY).fit(images, seed=0, contamination=0.3)
    estimated = RVQVAE(**TINY, contamination_source="estimate").fit(
        images, seed=0, contamination=0.3)
    otsu = RVQVAE(**TINY).fit(images, seed=0)
    assert given[-1]["split_outliers"] == 12
    assert [h["split_outliers"] for h in estimated] == [h["split_outliers"] for h in otsu]


@pytest.mark.slow  # ~20-40 s on 2 CPU cores: 3 seeds x 1000 images x 4 epochs, no prior
def test_no_inverted_split_on_mnist_fmnist_at_04_over_three_seeds(real_data):
    """The failure the majority first split fixes: at eps = 0.4 the earlier rule locked in the
    inverted split (split AUROC 0.05) in some seeds. Final split AUROC from the fit history.
    Pinned for the spread rule, which holds here; the default since the orientation study,
    recon, does not (0.45-0.55: results/rvqvae-orientation)."""
    from bench.scenarios import get_scenario

    scenario = get_scenario("mnist+fmnist@0.4").with_(train_size=1000)
    finals = []
    for seed in (0, 1, 2):
        data = scenario.build(seed)
        history = RVQVAE(epochs=4, prior_epochs=0, orientation="spread").fit(
            data.train_images, seed=seed, contamination=0.4, outlier_flags=data.train_is_outlier)
        finals.append(history[-1]["split_auroc"])
    assert min(finals) >= 0.8, finals


def test_mass_orientation_swaps_an_outlier_codebook_that_serves_the_majority():
    """orientation="mass": after a later split's check finds the outlier codebook serving more
    than half of the examples, the split is re-oriented and both codebooks re-seeded."""
    generator = torch.Generator().manual_seed(0)
    templates = torch.rand(2, 1, 1, 28, 28, generator=generator)
    noise = 0.05 * torch.randn(40, 1, 28, 28, generator=generator)
    images = (torch.cat([templates[0].expand(10, -1, -1, -1), templates[1].expand(30, -1, -1, -1)])
              + noise).clamp(0, 1)  # two groups: examples 0-9 and 10-39
    model = RVQVAE(**{**TINY, "epochs": 1, "prior_epochs": 0, "orientation": "mass",
                      "outlier_codebook_size": 8})
    model.fit(images, seed=0, contamination=0.25)
    assert int(model.outlier_set.sum()) == 10
    majority = torch.arange(40) >= 10  # the "outlier" side made the majority, its codebook theirs
    with torch.no_grad():
        grids = model.encoder(images)
        for book, side in ((model.outlier_codebook, majority), (model.inlier_codebook, ~majority)):
            book.reset_to(kmeans_plus_plus(to_rows(grids[side]), 8, generator))
    model.outlier_set = (torch.arange(40) >= 10) & (torch.arange(40) < 20)  # inside the majority
    assert model._outlier_codebook_serves_the_majority(images)
    record = model._resplit(images, torch.Generator().manual_seed(0))
    assert record["orientation_swaps"] == 1 and record["split_outliers"] == 10
    assert int((model.outlier_set[10:20]).sum()) < 5  # re-oriented away from the old set
    again = model._resplit(images, torch.Generator().manual_seed(0))
    assert "orientation_swaps" not in again  # once per fit: no flipping back and forth
