"""Paired claims: every model against a reference model, seed by seed (the report's ``claims``).

For each scenario, metric and model, the values of the model and of the reference model
(``--reference``, default ``vqvae``) are paired by seed, and the claims table gives:

- ``mean_diff``: the mean paired difference, model − reference;
- ``ci_low``/``ci_high``: a 95% confidence interval of that mean, ``scipy.stats.bootstrap``
  (BCa, ``N_RESAMPLES`` resamples of the paired differences);
- ``p_value``: two-sided paired permutation test of "no difference",
  ``scipy.stats.permutation_test`` with ``permutation_type="samples"`` (each pair's values are
  swapped, i.e. each difference's sign flipped; exact, over all 2^n flips, when
  2^n <= ``N_RESAMPLES``);
- ``wins``/``ties``/``losses``: seeds where the model is better / exactly equal / worse than the
  reference in the metric's direction (:mod:`bench.metrics.catalog`: FID lower, AUROC higher...);
- ``verdict``: ``better`` or ``worse`` only when the interval excludes 0 (in the metric's
  direction), else ``no difference shown``; with fewer than ``MIN_PAIRS`` (3) pairs no interval
  or p-value is computed and the verdict is ``n < 3: no claim``.

Reproducible: each bootstrap and each permutation test draws from its own fresh
``numpy.random.default_rng(CLAIM_SEED)`` (``CLAIM_SEED = 0``), so a row's numbers do not depend
on which other rows the report holds. A constant paired difference (all seeds differ by the
same amount, e.g. 0 for models that are bitwise identical; "the same" up to float rounding,
``ROUNDING`` relative to the values) has no spread to resample and BCa is undefined there (scipy
returns NaN with a ``DegenerateDataWarning``): the interval is then the zero-width
``[mean, mean]``, stated here rather than left to scipy. Should BCa be undefined for any other
sample, the percentile interval (same resamples) is used instead.

Pairs: a seed counts when both models have an ``ok``, finite value; a seed where either ran
but has no such value (undefined, failed, crashed cell, or the other model missing that seed) is
dropped and counted in ``n_dropped``. Only metrics with a known direction are compared, not
spreads (``kid_*_std``), and not where either model was not run on the scenario or neither has a
value (e.g. detection at ε = 0).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.report.aggregate import family_and_direction
from bench.report.tables import ARROWS, decimals_for, latex_escape
from rvqvae.errors import UserError

DEFAULT_REFERENCE = "vqvae"
CLAIM_SEED = 0
CONFIDENCE = 0.95
N_RESAMPLES = 9999
MIN_PAIRS = 3
ROUNDING = 64 * np.finfo(np.float64).eps  # paired differences this close (relative) are equal
NO_CLAIM = f"n < {MIN_PAIRS}: no claim"
NO_DIFFERENCE = "no difference shown"
CLAIM_COLUMNS = (
    "scenario", "epsilon", "model", "reference", "metric", "direction", "n_pairs", "n_dropped",
    "mean_diff", "ci_low", "ci_high", "p_value", "wins", "ties", "losses", "verdict",
)
CLAIMS = "claims"  # file stem under the report's tables/
NOTHING_TO_COMPARE = "Nothing to compare: no other model has a metric of known direction."


def paired_claims(
    records: pd.DataFrame, reference: str = DEFAULT_REFERENCE, *,
    models: Sequence[str] | None = None, confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES, seed: int = CLAIM_SEED,
) -> pd.DataFrame:
    """One row per (metric, scenario, model) of ``records`` (as :func:`bench.load_results`
    returns them) against ``reference``, columns ``CLAIM_COLUMNS``, in metric, scenario (run)
    and model order (``models``: which models and in what order; default all, in run order).

    Raises :class:`UserError` (one line, listing the models present) when ``reference`` has no
    records.
    """
    records = records[records["model"].notna()].sort_values(
        "timestamp", kind="stable", na_position="last")
    present = [str(m) for m in pd.unique(records["model"])]
    if reference not in present:
        raise UserError(f"reference model {reference!r} is not in this run; models present: "
                        f"{', '.join(present) or 'none'}")
    models = [m for m in (models if models is not None else present)
              if m != reference and m in present]
    seeds_run = {key: set(part["seed"].map(_seed))
                 for key, part in records.groupby(["scenario", "model"], sort=False)}
    epsilons = pd.to_numeric(records["epsilon"], errors="coerce").groupby(records["scenario"]).max()
    values = records[(records["status"] == "ok")
                     & np.isfinite(pd.to_numeric(records["value"], errors="coerce"))]
    by_cell = {key: dict(zip(part["seed"].map(_seed), part["value"].astype(float), strict=True))
               for key, part in values.groupby(["scenario", "model", "metric"], sort=False)}
    rows = []
    for metric in pd.unique(values["metric"]):
        direction = family_and_direction(str(metric))[1]
        if not direction or str(metric).endswith("_std"):
            continue
        for scenario in pd.unique(records["scenario"]):
            ref = by_cell.get((scenario, reference, metric), {})
            for model in models:
                own = by_cell.get((scenario, model, metric), {})
                ran = seeds_run.get((scenario, model), set())
                if not (own or ref) or not ran or (scenario, reference) not in seeds_run:
                    continue  # nothing to compare, or one of the two not run on this scenario
                ran |= seeds_run[(scenario, reference)]
                seeds = sorted(set(own) & set(ref), key=lambda s: (isinstance(s, str), s))
                stats = paired_difference(
                    [own[s] for s in seeds], [ref[s] for s in seeds], direction,
                    confidence=confidence, n_resamples=n_resamples, seed=seed)
                rows.append({"scenario": scenario, "epsilon": epsilons.get(scenario, math.nan),
                             "model": model, "reference": reference, "metric": metric,
                             "direction": direction, "n_dropped": len(ran) - len(seeds), **stats})
    return pd.DataFrame(rows, columns=list(CLAIM_COLUMNS))


def paired_difference(
    model: Sequence[float], reference: Sequence[float], direction: str, *,
    confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = CLAIM_SEED,
) -> dict:
    """The statistics of one claim from values paired by position (same seed): ``n_pairs``,
    ``mean_diff``, ``ci_low``, ``ci_high``, ``p_value``, ``wins``, ``ties``, ``losses``,
    ``verdict`` (see the module docstring). ``direction``: ``lower`` or ``higher`` is better."""
    from scipy.stats import permutation_test

    if direction not in ("lower", "higher"):
        raise ValueError(f"direction must be 'lower' or 'higher', got {direction!r}")
    x, y = np.asarray(model, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    diff = x - y
    n = len(diff)
    wins = int((diff < 0).sum() if direction == "lower" else (diff > 0).sum())
    ties = int((diff == 0).sum())
    stats = {"n_pairs": n, "mean_diff": float(diff.mean()) if n else math.nan,
             "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan,
             "wins": wins, "ties": ties, "losses": n - wins - ties, "verdict": NO_CLAIM}
    if n < MIN_PAIRS:
        return stats
    if np.ptp(diff) <= ROUNDING * max(np.abs(x).max(), np.abs(y).max()):
        low = high = stats["mean_diff"]  # no spread: BCa is undefined, the interval has no width
    else:
        low, high = _bootstrap_interval(diff, confidence, n_resamples, seed)
    test = permutation_test((x, y), _mean_difference, permutation_type="samples",
                            alternative="two-sided", n_resamples=n_resamples, vectorized=True,
                            random_state=np.random.default_rng(seed))
    positive, negative = low > 0, high < 0
    if positive or negative:
        verdict = "better" if positive == (direction == "higher") else "worse"
    else:
        verdict = NO_DIFFERENCE
    return {**stats, "ci_low": low, "ci_high": high, "p_value": float(test.pvalue),
            "verdict": verdict}


def claim_text(row) -> str:
    """``rvqvae vs vqvae, outlier_mode_rate_2k, ε = 0.4: −0.21 [−0.27, −0.15], 3/0/0``."""
    where = f"ε = {row['epsilon']:g}" if math.isfinite(row["epsilon"]) else row["scenario"]
    return (f"{row['model']} vs {row['reference']}, {row['metric']}, {where}: "
            f"{_interval_text(row)}, {_record_text(row)}")


def claims_markdown(claims: pd.DataFrame) -> str:
    """The claims as Markdown: a heading, the method, one sub-table per metric."""
    if claims.empty:
        return f"### Paired claims\n\n{NOTHING_TO_COMPARE}\n"
    reference = claims["reference"].iloc[0]
    lines = ["### Paired claims vs " + reference, "", _method(reference), ""]
    for metric in pd.unique(claims["metric"]):
        part = claims[claims["metric"] == metric]
        direction = part["direction"].iloc[0]
        lines += [f"**{metric}** {ARROWS[direction]} {direction} is better", "",
                  "| scenario | model | n | mean diff [95% CI] | p | W/T/L | verdict |",
                  "|---|---|---:|---:|---:|:---:|---|"]
        for _, row in part.iterrows():
            verdict = f"**{row['verdict']}**" if row["verdict"] in ("better", "worse") else (
                row["verdict"])
            lines.append(f"| {row['scenario']} | {row['model']} | {_n_text(row)} | "
                         f"{_interval_text(row)} | {_p_text(row['p_value'])} | "
                         f"{_record_text(row)} | {verdict} |")
        lines.append("")
    return "\n".join(lines)


def claims_latex(claims: pd.DataFrame) -> str:
    """The claims as a LaTeX ``longtable`` (booktabs rules), one row per claim."""
    if claims.empty:
        return f"% Paired claims: {NOTHING_TO_COMPARE}\n"
    reference = claims["reference"].iloc[0]
    body = pd.DataFrame({
        "metric": [latex_escape(m) + (r" $\downarrow$" if d == "lower" else r" $\uparrow$")
                   for m, d in zip(claims["metric"], claims["direction"], strict=True)],
        "scenario": claims["scenario"].map(latex_escape),
        "model": claims["model"].map(latex_escape),
        "n": [_n_text(row) for _, row in claims.iterrows()],
        "mean diff [95\\% CI]": [_interval_text(row) for _, row in claims.iterrows()],
        "p": claims["p_value"].map(_p_text),
        "W/T/L": [_record_text(row) for _, row in claims.iterrows()],
        "verdict": claims["verdict"],
    }).map(lambda text: str(text).replace("−", "$-$").replace("<", "$<$"))
    caption = (f"Paired claims: model $-$ {latex_escape(reference)} per scenario and metric, "
               r"paired by seed; mean difference with 95\% BCa bootstrap interval, two-sided "
               r"sign-flip permutation $p$, wins/ties/losses over seeds in the metric's "
               rf"direction; fewer than {MIN_PAIRS} pairs: no claim.")
    return body.style.hide(axis="index").to_latex(
        hrules=True, column_format="lllrrrcl", environment="longtable",
        caption=caption, label=f"tab:{CLAIMS}")


def claims_for_report(
    records: pd.DataFrame, reference: str | None, models: Sequence[str]
) -> tuple[pd.DataFrame | None, str]:
    """``(claims, "")``, or ``(None, note)`` when the default reference is not in the run; an
    explicit ``reference`` that is not in the run raises :class:`UserError`."""
    if reference is None:
        present = set(records["model"].dropna())
        if DEFAULT_REFERENCE not in present:
            return None, (f"No paired claims: the default reference model "
                          f"`{DEFAULT_REFERENCE}` is not in this run (pass --reference MODEL).")
        reference = DEFAULT_REFERENCE
    return paired_claims(records, reference, models=models), ""


def _method(reference: str) -> str:
    return (f"Model − `{reference}` on the same scenario and seed: mean paired difference, 95% "
            f"BCa bootstrap interval ({N_RESAMPLES} resamples), two-sided sign-flip permutation "
            f"p-value (exact for up to 13 pairs), W/T/L = seeds where the model is better / "
            f"equal / worse in the metric's direction. **better**/**worse** only when the "
            f"interval excludes 0; fewer than {MIN_PAIRS} pairs: no claim. n = pairs (+ dropped: "
            f"a seed without a value for either model). Seeded (`CLAIM_SEED = {CLAIM_SEED}`): "
            f"a re-run gives the same numbers.")


def _bootstrap_interval(diff: np.ndarray, confidence: float, n_resamples: int, seed: int
                        ) -> tuple[float, float]:
    """scipy's BCa interval of the mean; the percentile interval where BCa is undefined."""
    from scipy.stats import bootstrap

    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a NaN BCa interval is replaced below, not reported
            interval = bootstrap((diff,), np.mean, confidence_level=confidence, method=method,
                                 n_resamples=n_resamples, vectorized=True,
                                 random_state=np.random.default_rng(seed)).confidence_interval
        if np.isfinite(interval.low) and np.isfinite(interval.high):
            break
    return float(interval.low), float(interval.high)


def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def _interval_text(row) -> str:
    mean, low, high = row["mean_diff"], row["ci_low"], row["ci_high"]
    if not math.isfinite(mean):
        return "–"
    width = high - low if math.isfinite(low) and math.isfinite(high) else 0.0
    decimals = decimals_for(width, 2) if width > 0 else decimals_for(abs(mean), 3)
    text = _signed(mean, decimals)
    if math.isfinite(low):
        text += f" [{_signed(low, decimals)}, {_signed(high, decimals)}]"
    return text


def _signed(value: float, decimals: int) -> str:
    """``value`` rounded, with a typographic minus; a nonzero value that would round to zero in
    one significant digit (``4e-08``: an interval bound must show its sign), zero as ``0.00``."""
    text = f"{value:.{decimals}f}"
    if float(text) == 0:
        text = f"{value:.1g}" if value != 0 else text.lstrip("-")
    return text.replace("-", "−")


def _record_text(row) -> str:
    return f"{row['wins']}/{row['ties']}/{row['losses']}"


def _n_text(row) -> str:
    return f"{row['n_pairs']}" + (f" (+{row['n_dropped']})" if row["n_dropped"] else "")


def _p_text(p: float) -> str:
    if not math.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3g}"


def _seed(seed) -> object:
    try:
        return int(seed) if float(seed).is_integer() else seed
    except (TypeError, ValueError):
        return seed
