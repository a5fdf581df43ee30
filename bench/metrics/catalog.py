"""What each metric name means: its family, whether lower or higher is better, and its text.

Metric names carry their protocol (extractor, sample count, detection mode, score):
- generation: ``fid_<extractor>_<n>``, ``kid_<extractor>_<n>``, ``outlier_mode_rate_<n>``
  (n written as ``500``, ``2k``, ``10k``);
- detection: ``<auroc|aupr_out|aupr_in|fpr95>_<transductive|inductive>_<score>``;
- reconstruction: ``recon_mse_clean_test``; codebook: ``perplexity[_<codebook>]``;
- kernels: ``vectors_per_s``, ``gflops``, ``ratio_faiss``, ``pct_gemm``.
Reports and ``compare`` look names up here, so a new metric family is one new entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rvqvae.registry import Registry


@dataclass(frozen=True)
class MetricFamily:
    """Metrics whose names match ``pattern`` share a ``family`` table and a ``direction``."""

    pattern: str
    family: str  # generation | detection | reconstruction | codebook | kernel
    direction: str  # "lower" or "higher" is better
    description: str


METRIC_FAMILIES: Registry[MetricFamily] = Registry("metric family")


def _family(name: str, pattern: str, family: str, direction: str, description: str) -> None:
    METRIC_FAMILIES.register(
        name, MetricFamily(pattern, family, direction, description), description=description
    )


_family("fid", r"fid_[a-z0-9-]+_\w+", "generation", "lower",
        "Frechet distance of generated samples to the clean inlier test split")
_family("kid", r"kid_[a-z0-9-]+_[0-9.]+k?", "generation", "lower",
        "kernel inception distance (mean over subsets) to the clean inlier test split")
_family("kid_std", r"kid_[a-z0-9-]+_[0-9.]+k?_std", "generation", "lower",
        "standard deviation of KID over its subsets (a spread, not a quality)")
_family("outlier_mode_rate", r"outlier_mode_rate(_\w+)?", "generation", "lower",
        "fraction of generated samples the domain classifier assigns to outlier classes")
_family("auroc", r"auroc_(transductive|inductive)_\w+", "detection", "higher",
        "area under ROC, outliers positive, higher score = more outlying")
_family("aupr_out", r"aupr_out_(transductive|inductive)_\w+", "detection", "higher",
        "area under precision-recall with outliers positive")
_family("aupr_in", r"aupr_in_(transductive|inductive)_\w+", "detection", "higher",
        "area under precision-recall with inliers positive (negated score)")
_family("fpr95", r"fpr95_(transductive|inductive)_\w+", "detection", "lower",
        "false-positive rate on inliers at 95% true-positive rate on outliers")
_family("recon", r"recon_\w+", "reconstruction", "lower",
        "mean squared reconstruction error per pixel on the clean inlier test split")
_family("perplexity", r"perplexity(_\w+)?", "codebook", "higher",
        "codebook usage: exp of the entropy of code frequencies on the clean inlier test split")
_family("train", r"train_images_per_s", "training", "higher",
        "training throughput: training images x epochs / fit wall seconds")
_family("kernel_rate", r"(vectors_per_s|gflops|ratio_faiss|pct_gemm)", "kernel",
        "higher", "nearest-codeword search throughput")


def metric_family(metric: str) -> MetricFamily:
    """The family of a metric name; a ``KeyError`` naming the metric when none matches."""
    for entry in METRIC_FAMILIES.entries():
        if re.fullmatch(entry.obj.pattern, metric):
            return entry.obj
    raise KeyError(f"metric {metric!r} matches no registered metric family")


def count_suffix(n: int) -> str:
    """Sample counts as they appear in metric names: 500, 2k, 10k, 1.5k."""
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    if n >= 1000 and n % 100 == 0:
        return f"{n / 1000:g}k"
    return str(n)
