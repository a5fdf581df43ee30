"""Outlier-detection metrics of outlier scores against the true flags (torchmetrics).

Conventions (README, "Metrics"): a higher score means more outlying; outliers are the
positive class for AUROC, AUPR-out and FPR@95TPR; AUPR-in takes inliers as positive with the
negated score. Names: ``<auroc|aupr_out|aupr_in|fpr95>_<mode>_<score>`` with mode
``transductive`` (scores on the contaminated training set) or ``inductive`` (held-out mixed
test set).

Choices documented here because they change numbers:

- **Exact curves.** Scores are replaced by their dense ranks scaled to [0, 1] (float64) before
  torchmetrics sees them. This keeps order and ties exactly, and avoids torchmetrics'
  rule "values outside [0, 1] are logits: apply a sigmoid", which in float32 saturates large
  scores (e.g. reconstruction errors > 17) into artificial ties and wrong AUROCs.
- **AUPR** is average precision (step-wise, as sklearn's ``average_precision_score``), not
  the trapezoidal area.
- **FPR@95TPR** takes the ROC curve over all distinct thresholds and returns the FPR of the
  first threshold (highest score first) whose TPR reaches 0.95; no interpolation between
  points, so it is the FPR of a threshold one could actually use.
- **Undefined, not a number:** with no outliers (epsilon = 0) or no inliers every metric is
  ``undefined`` (NaN) with the reason; never a crash and never a made-up 0.5. A score with
  NaN or infinite values (e.g. a diverged model) is ``undefined`` for that score only, with
  the count of bad values in the reason, so the other scores of the cell are still reported.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
    binary_roc,
)

from bench.metrics.catalog import metric_name
from bench.metrics.values import MetricValue, defined, undefined
from rvqvae.models.outlier_split import dense_rank

DETECTION_MODES = ("transductive", "inductive")
DETECTION_METRICS = ("auroc", "aupr_out", "aupr_in", "fpr95")
TPR_LEVEL = 0.95


def detection_metrics(
    scores: dict[str, torch.Tensor],
    is_outlier: torch.Tensor,
    *,
    mode: str = "transductive",
    **protocol,
) -> list[MetricValue]:
    """AUROC, AUPR-out, AUPR-in and FPR@95TPR for every score in ``scores``.

    ``scores[name]`` is a tensor of N values (higher = more outlying); ``is_outlier`` holds N
    booleans (or 0/1). Returns four :class:`MetricValue` per score, in the order of
    ``scores`` then ``DETECTION_METRICS``; values that cannot exist are ``undefined``.
    Extra keywords are stored in each value's protocol.
    """
    if mode not in DETECTION_MODES:
        raise ValueError(f"detection mode must be one of {DETECTION_MODES}, got {mode!r}")
    target = torch.as_tensor(is_outlier).flatten().to(torch.long).cpu()
    n_outliers = int(target.sum())
    n = int(target.numel())
    protocol = {"mode": mode, "n": n, "n_outliers": n_outliers, "tpr_level": TPR_LEVEL, **protocol}
    split_reason = _undefined_split_reason(n, n_outliers, mode)
    values: list[MetricValue] = []
    for score_name, score in scores.items():
        names = [metric_name(metric, mode=mode, score=score_name) for metric in DETECTION_METRICS]
        score = torch.as_tensor(score).detach().flatten().cpu()
        if score.numel() != n:
            raise ValueError(
                f"score {score_name!r} has {score.numel()} values but there are {n} outlier flags"
            )
        reason = split_reason or _nonfinite_reason(score_name, score)
        if reason:
            values.extend(undefined(name, reason, **protocol) for name in names)
            continue
        numbers = _detection_numbers(dense_rank(score), target)
        values.extend(
            defined(name, numbers[m], **protocol)
            for name, m in zip(names, DETECTION_METRICS, strict=True)
        )
    return values


def roc_curve(score, is_outlier) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(false-positive rates, true-positive rates, AUROC) of one score, as the detection metrics
    compute them (torchmetrics on dense ranks; outliers positive, higher = more outlying; tied
    scores move along the diagonal). The report's ROC figures draw these curves."""
    target = torch.as_tensor(is_outlier).flatten().long()
    rank = dense_rank(torch.as_tensor(score).flatten().double())
    fpr, tpr, _ = binary_roc(rank, target)
    return fpr.double(), tpr.double(), float(binary_auroc(rank, target))


def fpr_at_tpr(
    score: torch.Tensor, is_outlier: torch.Tensor, tpr_level: float = TPR_LEVEL
) -> float:
    """FPR on inliers at the first threshold (highest first) where TPR on outliers >= tpr_level."""
    target = torch.as_tensor(is_outlier).flatten().long()
    fpr, tpr, _ = binary_roc(dense_rank(score.flatten()), target)
    # torchmetrics returns float32 rates; recover the integer counts and divide in float64
    # (as sklearn does) so that e.g. 19 of 20 outliers is exactly TPR 0.95
    n_outliers = int(target.sum())
    n_inliers = target.numel() - n_outliers
    tpr64 = torch.round(tpr.double() * n_outliers) / n_outliers
    fpr64 = torch.round(fpr.double() * n_inliers) / n_inliers
    reached = torch.nonzero(tpr64 >= tpr_level)
    return float(fpr64[reached[0, 0]])


def _detection_numbers(rank: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    return {
        "auroc": float(binary_auroc(rank, target)),
        "aupr_out": float(binary_average_precision(rank, target)),
        "aupr_in": float(binary_average_precision(1.0 - rank, 1 - target)),
        "fpr95": fpr_at_tpr(rank, target),
    }


def _undefined_split_reason(n: int, n_outliers: int, mode: str) -> str:
    if n == 0:
        return f"the {mode} split is empty"
    if n_outliers == 0:
        return f"the {mode} split holds no outliers (epsilon = 0): detection is undefined"
    if n_outliers == n:
        return f"the {mode} split holds only outliers: detection is undefined"
    return ""


def _nonfinite_reason(score_name: str, score: torch.Tensor) -> str:
    if not score.is_floating_point():
        return ""
    bad = int((~torch.isfinite(score)).sum())
    if bad:
        return f"score {score_name!r} has {bad} NaN/infinite value(s) of {score.numel()}"
    return ""
