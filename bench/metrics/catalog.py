"""The metric catalog: everything about a metric name, in one place.

Each entry (:class:`MetricFamily`) says, for the metric names its ``pattern`` matches: the
``family`` (aggregate column), whether ``lower`` or ``higher`` is better, the ``unit``, the
report ``table`` it goes into, the ``figure`` it is drawn in (if any) and the regression gate's
default floor (``abs``, ``rel``). Tables (:mod:`bench.report.tables`), figures
(:mod:`bench.report.figures`), the gate's tolerances (:mod:`bench.regression_rule`; a
tolerance file may still override) and ``compare`` all read it, so a new metric is one entry
here next to the code that computes it.

Metric names carry their protocol (extractor, sample count, detection mode, score):
- generation: ``fid_<extractor>_<n>``, ``kid_<extractor>_<n>``, ``outlier_mode_rate_<n>``
  (n written as ``500``, ``2k``, ``10k``);
- detection: ``<auroc|aupr_out|aupr_in|fpr95>_<transductive|inductive>_<score>``;
- reconstruction: ``recon_mse_clean_test``; codebook: ``perplexity[_<codebook>]``;
- training health: ``degenerate`` (0/1), ``health_recon_vs_mean_image``,
  ``health_sample_spread``, ``health_loss_drop``, ``health_kl_per_image``;
- training: ``train_images_per_s``; cost: ``seconds_<phase>`` per phase of a cell;
- kernels: ``vectors_per_s``, ``gflops``, ``ratio_faiss``, ``pct_gemm``, ``compile_s``,
  ``agreement``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rvqvae.registry import Registry

TABLES = {  # table -> title, in report order
    "generation": "Generation quality",
    "detection": "Outlier detection",
    "reconstruction": "Reconstruction and codebook",
    "kernel": "Kernel speed",
    "training": "Training",
    "health": "Training health",
    "other": "Other metrics",
}


FIGURE_TITLES = {  # figure -> title; the metrics drawn in each are the entries naming it
    "fid_kid_vs_epsilon": "FID and KID vs contamination",
    "outlier_rate_vs_epsilon": "Outlier-mode rate of samples vs contamination",
    "auroc_vs_epsilon": "Outlier-detection AUROC vs contamination",
}


@dataclass(frozen=True)
class MetricFamily:
    """Metrics whose names fully match ``pattern`` (a regular expression)."""

    pattern: str
    family: str  # generation | detection | reconstruction | codebook | training | cost | ...
    direction: str  # "lower" or "higher" is better
    description: str
    unit: str = ""
    table: str = "other"  # a key of TABLES
    figure: str = ""  # a figure of bench.report.figures ('' = none)
    abs: float = 0.0  # the gate's default floor: max(abs, rel * |baseline mean|)
    rel: float = 0.0
    primary: bool = False  # in the family of claims that get a verdict (bench.report.verdict_rule)
    spread: bool = False  # a spread over subsets, not a quality: never claimed
    template: str = ""  # how code names a value of it (metric_name), e.g. "fid_{extractor}_{n}"


METRIC_FAMILIES: Registry[MetricFamily] = Registry("metric family")
_FOUND: dict[str, MetricFamily] = {}  # metric name -> its entry, cleared on registration


def register_metric(name: str, pattern: str, family: str, direction: str, description: str,
                    **fields) -> MetricFamily:
    """Add a catalog entry (see :class:`MetricFamily` for ``fields``)."""
    entry = MetricFamily(pattern, family, direction, description, **fields)
    if entry.table not in TABLES or entry.direction not in ("lower", "higher"):
        raise ValueError(f"metric family {name!r}: table must be one of {list(TABLES)} and "
                         f"direction lower or higher")
    if entry.figure and entry.figure not in FIGURE_TITLES:
        raise ValueError(f"metric family {name!r}: figure {entry.figure!r} is unknown; known: "
                         f"{', '.join(FIGURE_TITLES)} (or '' for none)")
    METRIC_FAMILIES.register(name, entry, description=description)
    _FOUND.clear()
    return entry


# Generation quality: a few percent of FID, one to two points of a rate.
register_metric("fid", r"fid_[a-z0-9-]+_\w+", "generation", "lower",
                "Frechet distance of generated samples to the clean inlier test split",
                table="generation", figure="fid_kid_vs_epsilon", rel=0.05, primary=True,
                template="fid_{extractor}_{n}")
register_metric("kid", r"kid_[a-z0-9-]+_[0-9.]+k?", "generation", "lower",
                "kernel inception distance (mean over subsets) to the clean inlier test split",
                table="generation", figure="fid_kid_vs_epsilon", rel=0.10, abs=0.0002,
                template="kid_{extractor}_{n}")
register_metric("kid_std", r"kid_[a-z0-9-]+_[0-9.]+k?_std", "generation", "lower",
                "standard deviation of KID over its subsets (a spread, not a quality)",
                table="generation", rel=0.25, abs=0.0005, spread=True,
                template="kid_{extractor}_{n}_std")
register_metric("outlier_mode_rate", r"outlier_mode_rate(_\w+)?", "generation", "lower",
                "fraction of generated samples the domain classifier assigns to outlier classes",
                unit="fraction", table="generation", figure="outlier_rate_vs_epsilon", abs=0.02,
                primary=True, template="outlier_mode_rate_{n}")
# Outlier detection: absolute points of AUROC / AUPR / FPR@95TPR.
register_metric("auroc", r"auroc_(transductive|inductive)_\w+", "detection", "higher",
                "area under ROC, outliers positive, higher score = more outlying",
                table="detection", figure="auroc_vs_epsilon", abs=0.01, primary=True,
                template="auroc_{mode}_{score}")
register_metric("aupr_out", r"aupr_out_(transductive|inductive)_\w+", "detection", "higher",
                "area under precision-recall with outliers positive",
                table="detection", abs=0.02, template="aupr_out_{mode}_{score}")
register_metric("aupr_in", r"aupr_in_(transductive|inductive)_\w+", "detection", "higher",
                "area under precision-recall with inliers positive (negated score)",
                table="detection", abs=0.02, template="aupr_in_{mode}_{score}")
register_metric("fpr95", r"fpr95_(transductive|inductive)_\w+", "detection", "lower",
                "false-positive rate on inliers at 95% true-positive rate on outliers",
                unit="fraction", table="detection", abs=0.03, template="fpr95_{mode}_{score}")
# Reconstruction and codebook usage.
register_metric("recon", r"recon_\w+", "reconstruction", "lower",
                "mean squared reconstruction error per pixel on the clean inlier test split",
                unit="per pixel", table="reconstruction", rel=0.02)
register_metric("perplexity", r"perplexity(_\w+)?", "codebook", "higher",
                "codebook usage: exp of the entropy of code frequencies on the clean inlier "
                "test split", unit="codes", table="reconstruction", rel=0.05)
# Training health (bench.metrics.health): did the model learn? A newly degenerate seed (the
# fraction of degenerate seeds rises above a baseline of none) is a regression.
register_metric("degenerate", r"degenerate", "health", "lower",
                "1 when the cell's training was flagged degenerate (its record's health field "
                "says why), else 0; the mean is the fraction of degenerate seeds",
                unit="fraction", table="health")
register_metric("health_recon", r"health_recon_vs_mean_image", "health", "lower",
                "clean-test reconstruction MSE / MSE of the mean training image (1: dead decoder)",
                table="health", rel=0.25)
register_metric("health_spread", r"health_sample_spread", "health", "higher",
                "per-pixel spread of generated samples / that of the clean test images "
                "(0: samples all alike)", table="health", rel=0.25)
register_metric("health_loss", r"health_loss_drop", "health", "lower",
                "last / first epoch training loss (1: the loss never moved)",
                table="health", rel=0.25)
register_metric("health_kl", r"health_kl_per_image", "health", "higher",
                "VAEs: KL of the posterior to the prior at the last epoch (0: collapsed)",
                unit="nats", table="health", rel=0.5)
# Timings depend on the machine and its load (2x between runs on shared CPUs): informational
# (a throughput cannot fall by more than 100%: never a regression).
register_metric("train", r"train_images_per_s", "training", "higher",
                "training throughput: training images x epochs / fit wall seconds",
                unit="images/s", table="training", rel=1.0)
register_metric("seconds", r"seconds_\w+", "cost", "lower",
                "wall seconds of one phase of the cell (fit, prior, sampling, a metric group)",
                unit="s", table="training", rel=1000.0, template="seconds_{phase}")
register_metric("kernel_rate", r"(vectors_per_s|gflops)", "kernel", "higher",
                "nearest-codeword search throughput (vectors/s, GFLOP/s of 2NKD)",
                unit="1/s", table="kernel", rel=1.0)
register_metric("compile_s", r"compile_s", "kernel", "lower",
                "first call minus a timed call: compilation, kernel build, blocking measurement",
                unit="s", table="kernel", abs=3600.0)
# The kernel-speed gate: same-run ratios. A machine change moved them by up to ~60% (chunked
# x FAISS 0.95 on an EPYC, 0.40 on a Xeon); a fall-back to torch-cdist costs ~96% and fails;
# one from fused to chunked (-45% on the ci grid on a Xeon) is within machine variation.
register_metric("kernel_ratio", r"(ratio_faiss|pct_gemm)", "kernel", "higher",
                "search throughput relative to FAISS (x) and to the same-shape GEMM (%), "
                "timed in the same run", table="kernel", rel=0.6)
# Correctness of a timed search: any row off the true nearest codeword is a regression.
register_metric("kernel_agreement", r"agreement", "kernel", "higher",
                "fraction of checked rows whose codeword is a true nearest one (float64 brute "
                "force, near-tie tolerance)", unit="fraction", table="kernel", abs=0.001)


def metric_family(metric: str) -> MetricFamily:
    """The catalog entry of a metric name; a ``KeyError`` naming the metric when none matches,
    a ``ValueError`` when two entries' patterns match it (the catalog must be unambiguous)."""
    if metric not in _FOUND:
        matches = [entry for entry in METRIC_FAMILIES.entries()
                   if re.fullmatch(entry.obj.pattern, metric)]
        if not matches:
            raise KeyError(f"metric {metric!r} matches no registered metric family")
        if len(matches) > 1:
            raise ValueError(f"metric {metric!r} matches the catalog entries "
                             f"{' and '.join(e.name for e in matches)}: make their patterns "
                             f"exclusive")
        _FOUND[metric] = matches[0].obj
    return _FOUND[metric]


def metric_name(entry: str, **parts: str | int) -> str:
    """The name of a value of catalog entry ``entry``: its ``template`` filled with ``parts``
    (an ``n`` that is an int is written as :func:`count_suffix` does). Raises ``ValueError``
    when the name would not be found back as that entry (a typo cannot drift a name)."""
    family = METRIC_FAMILIES.get(entry)
    if "n" in parts and isinstance(parts["n"], int):
        parts["n"] = count_suffix(parts["n"])
    try:
        name = family.template.format(**parts)
    except (KeyError, IndexError) as error:
        raise ValueError(f"metric entry {entry!r} names its values {family.template!r}; "
                         f"missing part {error}") from None
    try:
        found = metric_family(name) if family.template else None
    except KeyError:
        found = None
    if found is not family:
        raise ValueError(f"{name!r} built for catalog entry {entry!r} is not found back as it")
    return name


def is_timing(metric: str) -> bool:
    """A wall-clock measurement of the machine (throughput, a phase's seconds): it differs
    between two runs of the same cell, unlike every other value."""
    try:
        return metric_family(str(metric)).family in ("training", "cost")
    except KeyError:
        return False


def table_of(metric: str) -> str:
    """The report table a metric goes into (``other`` for a name the catalog does not know)."""
    try:
        return metric_family(str(metric)).table
    except KeyError:
        return "other"


def figure_of(metric: str) -> str:
    """The figure a metric is drawn in ('' for none or an unknown name)."""
    try:
        return metric_family(str(metric)).figure
    except KeyError:
        return ""


def count_suffix(n: int) -> str:
    """Sample counts as they appear in metric names: 500, 2k, 10k, 1.5k."""
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    if n >= 1000 and n % 100 == 0:
        return f"{n / 1000:g}k"
    return str(n)
