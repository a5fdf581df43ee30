"""Choosing an outlier set from per-example scores: the step RVQ-VAE and trimmed VQ-VAE repeat
every epoch.

``split_by_score`` marks exactly ``round(eps * n)`` examples with the highest scores as outliers.
The fraction eps comes from, in order: a fixed value in the model config, the ``contamination``
passed to ``fit``, or an estimate from the scores themselves (Otsu's two-class threshold).
"""

from __future__ import annotations

from typing import Any

import torch

from rvqvae.errors import UserError

ESTIMATES = ("otsu",)


def split_by_score(
    scores: torch.Tensor, *, contamination: float | None, estimate: str = "otsu",
    max_fraction: float = 0.5,
) -> torch.Tensor:
    """Bool mask (N,) marking the ``round(contamination * N)`` highest ``scores`` as outliers.

    Ties are broken deterministically: among equal scores the lower index is marked first. With
    ``contamination=None`` the count is estimated by ``estimate`` and capped at
    ``max_fraction * N``.
    """
    n = scores.shape[0]
    if contamination is None:
        count = min(estimated_outlier_count(scores, estimate), int(max_fraction * n))
    else:
        if not 0 <= contamination < 1:
            raise UserError(f"contamination must be in [0, 1), got {contamination}")
        count = round(contamination * n)
    return top_scores_mask(scores, count)


def top_scores_mask(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Bool mask of exactly ``count`` entries with the highest scores (lower index wins ties)."""
    order = torch.sort(scores, descending=True, stable=True).indices
    mask = torch.zeros(scores.shape[0], dtype=torch.bool)
    mask[order[:count]] = True
    return mask


def estimated_outlier_count(scores: torch.Tensor, estimate: str = "otsu") -> int:
    """How many scores lie above a data-driven threshold.

    ``"otsu"``: the threshold that maximises the between-class variance of the two groups it
    makes (Otsu 1979, computed exactly over all N - 1 cut points of the sorted scores). It
    assumes the scores of outliers and inliers form two groups; it returns 0 for constant scores.
    """
    if estimate not in ESTIMATES:
        raise UserError(
            f"estimate={estimate!r} is not supported; choose one of {', '.join(ESTIMATES)}")
    n = scores.shape[0]
    if n < 2:
        return 0
    ordered = torch.sort(scores.double(), descending=True).values
    if ordered[0] == ordered[-1]:
        return 0
    upper_sum = torch.cumsum(ordered, 0)[:-1]  # sum of the k highest, k = 1..n-1
    upper_count = torch.arange(1, n, dtype=torch.float64)
    total = ordered.sum()
    upper_mean = upper_sum / upper_count
    lower_mean = (total - upper_sum) / (n - upper_count)
    between = upper_count * (n - upper_count) * (upper_mean - lower_mean).square()
    # only cut between distinct values, so that equal scores land on the same side
    distinct = ordered[:-1] > ordered[1:]
    between = torch.where(distinct, between, torch.full_like(between, -1.0))
    return int(between.argmax()) + 1


def split_quality(predicted: torch.Tensor, true_flags: torch.Tensor | None,
                  scores: torch.Tensor | None = None) -> dict[str, Any]:
    """``split_precision`` and ``split_recall`` of a predicted outlier mask, and with ``scores``
    (the scores the split ranked by) ``split_auroc`` (see :func:`score_auroc`); empty without
    flags.

    Precision is NaN when nothing is predicted, recall is NaN when there are no true outliers.
    """
    if true_flags is None:
        return {}
    hits = float((predicted & true_flags).sum())
    predicted_count, true_count = float(predicted.sum()), float(true_flags.sum())
    quality = {
        "split_precision": hits / predicted_count if predicted_count else float("nan"),
        "split_recall": hits / true_count if true_count else float("nan"),
    }
    if scores is not None:
        quality["split_auroc"] = score_auroc(scores, true_flags)
    return quality


def score_auroc(scores: torch.Tensor, true_flags: torch.Tensor) -> float:
    """AUROC of ``scores`` (higher = more outlying) with the true outliers positive; NaN when
    there are no outliers or no inliers. Below 0.5 means the split ranks the wrong way round.

    torchmetrics' ``binary_auroc`` of the scores' dense ranks scaled to [0, 1] (same order,
    same ties): it would pass raw scores outside [0, 1] through a sigmoid, which squashes large
    ones into ties.
    """
    from torchmetrics.functional.classification import binary_auroc

    flags = true_flags.flatten().long().cpu()
    outliers = int(flags.sum())
    if outliers == 0 or outliers == flags.numel():
        return float("nan")
    return float(binary_auroc(dense_rank(scores), flags))


def dense_rank(scores: torch.Tensor) -> torch.Tensor:
    """Scores (any shape, flattened, on the CPU) mapped to [0, 1] by their dense rank, float64:
    the same order and the same ties. The rank-based metrics (here and the harness's detection
    metrics) take these instead of raw scores, which torchmetrics would pass through a sigmoid
    when outside [0, 1]."""
    _, rank = torch.unique(scores.detach().flatten().cpu(), sorted=True, return_inverse=True)
    top = max(int(rank.max()), 1) if rank.numel() else 1
    return rank.to(torch.float64) / top
