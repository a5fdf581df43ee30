"""RVQ-VAE's split rules: the first split, its orientation and the smoothing of later ones (see
:mod:`rvqvae.models.rvqvae`).

The two-codebook objective has two stable solutions, the right one and the inverted one (the
"outlier" codebook fits the inliers). Which one training reaches is decided by the first split,
so the first split is taken from a model of the majority: during warm-up one codebook (the
inlier one) quantises everything; since eps < 0.5, the examples it fits worst are mostly
outliers. They seed the outlier set, and the outlier codebook is initialised from their latents.

- :func:`kmeans_plus_plus`: k-means++ seeding (Arthur & Vassilvitskii 2007) of k codewords;
- :func:`median_distance`: distance of each example's latents to the examples' coordinate-wise
  median (scaled by the MAD), the default first-split score;
- :func:`sample_rows`: k random rows (the "random" initialisation);
- :func:`smoothed_ranks`: per-example ranks in [0, 1], averaged over epochs (hysteresis);
- :func:`mass_oriented_scores` and :func:`likelihood_gap`: the "mass" orientation rule (the
  inlier side is the one that serves the majority under a proper likelihood).
"""

from __future__ import annotations

import torch

from rvqvae import quantize

MAX_INIT_POINTS = 8192  # latent rows the outlier codebook is initialised from (a random subset)
MASS_ROUNDS = 10  # most rounds of free assignment before the mass rule orients the split


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


def codebook_nll(rows: torch.Tensor, codewords: torch.Tensor, members: torch.Tensor,
                 eps: float = 1e-4) -> torch.Tensor:
    """Per row (N x D), the negative log-likelihood (up to a constant shared by every codebook)
    under the codebook as a mixture of Gaussians at its codewords with one diagonal covariance:
    the per-coordinate residual variance of ``members`` (M x D, the rows the codebook serves)
    around their nearest codewords, + ``eps``. ``0.5 * weighted distance + 0.5 * log det``: the
    normaliser is what keeps a diffuse codebook from winning every row on distance alone."""
    rows, members = rows.float(), members.float()
    nearest_member, _ = quantize.nearest(members, codewords)
    variance = (members - codewords[nearest_member]).square().mean(0) + eps
    _, distances = quantize.nearest(rows, codewords, 1.0 / variance)
    return 0.5 * distances + 0.5 * variance.log().sum()


def likelihood_gap(grids: torch.Tensor, outliers: torch.Tensor, books: tuple, *,
                   eps: float = 1e-4) -> torch.Tensor:
    """Per example (``grids`` N x D x h x w), the mean over its latent positions of (NLL under
    the inlier side's codebook - NLL under the outlier side's); ``books`` = (inlier codewords,
    outlier codewords), each codebook's covariance from the rows of its side (``outliers``, a
    bool mask). Positive = the outlier codebook serves the example better."""
    n, dim = grids.shape[0], grids.shape[1]
    rows = grids.permute(0, 2, 3, 1).reshape(n, -1, dim)
    nll = [codebook_nll(rows.reshape(-1, dim), book, rows[side].reshape(-1, dim), eps)
           for book, side in zip(books, (~outliers, outliers), strict=True)]
    return (nll[0] - nll[1]).view(n, -1).mean(1)


def mass_oriented_scores(grids: torch.Tensor, start: torch.Tensor, sizes: tuple[int, int],
                         generator: torch.Generator, *, rounds: int = MASS_ROUNDS,
                         eps: float = 1e-4) -> torch.Tensor:
    """The "mass" rule: per-example outlier scores (higher = outlier) for latent ``grids``
    (N x D x h x w), from a ``start`` partition (bool mask of the outlier side).

    Classification EM: each round, the two codebooks (``sizes`` = inlier, outlier codewords)
    are k-means++ seeds of their side's latents, and every example goes freely to the side whose
    codebook gives its latents the lower NLL (:func:`likelihood_gap`); stop when nothing moves
    or after ``rounds``. The side that then serves more than half of the examples is the
    inlier side (the abstract's one assumption: inliers are the majority), so the scores are
    the likelihood gap oriented towards the minority side.

    Assumes the two groups differ in their latents' local spread or location enough for a
    two-codebook mixture to separate them; where the outliers sit inside the inlier cloud the
    free assignment cuts the cloud instead, and the orientation is then arbitrary.
    """
    outliers = start.clone()
    gap = None
    for _ in range(rounds):
        if outliers.all() or not outliers.any():
            break
        books = tuple(kmeans_plus_plus(_side_rows(grids, side), size, generator)
                      for side, size in zip((~outliers, outliers), sizes, strict=True))
        gap = likelihood_gap(grids, outliers, books, eps=eps)
        moved = gap > 0
        if torch.equal(moved, outliers) or moved.all() or not moved.any():
            break
        outliers = moved
    if gap is None:
        return start.float()
    return gap if int((gap > 0).sum()) * 2 <= gap.shape[0] else -gap


def _side_rows(grids: torch.Tensor, side: torch.Tensor) -> torch.Tensor:
    return grids[side].permute(0, 2, 3, 1).reshape(-1, grids.shape[1])
