"""RVQ-VAE's first split and the smoothing of later ones (see :mod:`rvqvae.models.rvqvae`).

The two-codebook objective has two stable solutions, the right one and the inverted one (the
"outlier" codebook fits the inliers). Which one training reaches is decided by the first split,
so the first split is taken from a model of the majority: during warm-up one codebook (the
inlier one) quantises everything; since eps < 0.5, the examples it fits worst are mostly
outliers. They seed the outlier set, and the outlier codebook is initialised from their latents.

- :func:`kmeans_plus_plus`: k-means++ seeding (Arthur & Vassilvitskii 2007) of k codewords;
- :func:`median_distance`: distance of each example's latents to the examples' coordinate-wise
  median (scaled by the MAD), the default first-split score;
- :func:`sample_rows`: k random rows (the "random" initialisation);
- :func:`smoothed_ranks`: per-example ranks in [0, 1], averaged over epochs (hysteresis).
"""

from __future__ import annotations

import torch

MAX_INIT_POINTS = 8192  # latent rows the outlier codebook is initialised from (a random subset)


def kmeans_plus_plus(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k rows of ``points`` (N x D, N >= 1) chosen by k-means++: the first uniformly, each next
    one with probability proportional to its squared distance to the nearest chosen row (a row
    already chosen has weight 0; if all weights are 0 the pick is uniform). Returns k x D."""
    points = _subset(points, generator)
    n = points.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    chosen = [first]
    nearest = (points - points[first]).square().sum(1).double()
    for _ in range(1, k):
        total = float(nearest.sum())
        if total > 0:
            pick = int(torch.multinomial((nearest / total).cpu(), 1, generator=generator))
        else:
            pick = int(torch.randint(n, (1,), generator=generator))
        chosen.append(pick)
        nearest = torch.minimum(nearest, (points - points[pick]).square().sum(1).double())
    return points[torch.tensor(chosen).to(points.device)].clone()


def median_distance(latents: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per example, the squared distance of its flattened latent grid (N x ...) to the
    coordinate-wise median over the examples, each coordinate scaled by its median absolute
    deviation (+ ``eps``). While outliers are fewer than half, the median and MAD are statistics
    of the inliers, so the examples farthest from them are mostly outliers."""
    flat = latents.flatten(1).double()
    median = flat.median(0).values
    mad = (flat - median).abs().median(0).values + eps
    return ((flat - median) / mad).square().sum(1).float()


def sample_rows(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k rows of ``points`` drawn uniformly with replacement (k x D)."""
    rows = torch.randint(points.shape[0], (k,), generator=generator)
    return points[rows.to(points.device)].clone()


def smoothed_ranks(scores: torch.Tensor, previous: torch.Tensor | None,
                   momentum: float) -> torch.Tensor:
    """``momentum * previous + (1 - momentum) * r``, r = the scores' ranks scaled to [0, 1]
    (ties share the lowest rank; the highest score gets 1). ``previous=None`` -> r.

    Ranks, not raw scores, so that epochs whose scores have different scales weigh alike.
    """
    n = scores.shape[0]
    order = torch.sort(scores.double(), stable=True).values
    ranks = torch.searchsorted(order, scores.double(), right=False).double() / max(n - 1, 1)
    if previous is None:
        return ranks
    return momentum * previous + (1.0 - momentum) * ranks


def _subset(points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if points.shape[0] <= MAX_INIT_POINTS:
        return points
    rows = torch.randperm(points.shape[0], generator=generator)[:MAX_INIT_POINTS]
    return points[rows.to(points.device)]
