"""The verdict rule of paired claims: when may a report say "better" or "worse"?

A claim compares a model with a reference model on one scenario and metric, **paired by seed**
(the same seed draws the same data, outliers and batches for both). With the paired
differences ``d_1..d_n`` (model − reference):

1. **Test**: the exact two-sided sign-flip permutation test of the mean difference
   (``scipy.stats.permutation_test``, ``permutation_type="samples"`` on the differences: every
   one of the ``2^n`` sign patterns, exact up to ``2^n <= EXACT_LIMIT``). Its null hypothesis
   is "the two recipes are exchangeable within a seed" (which model produced which of a seed's
   two values does not matter); under it the test's level is exact for *any* noise
   distribution, skewed, heavy-tailed or with failed seeds, at any n. Its smallest two-sided
   p-value is ``2 / 2^n``, so a level ``alpha`` needs ``n >= min_pairs(alpha)`` seeds (6 at
   0.05): with fewer a claim says "too few seeds for a verdict (need >= 6)", and with none (a
   model lacks the metric, e.g. a split AUROC of a model that does not split, or every seed
   failed for one of the two) "no paired values".
2. **Multiplicity**: the p-values of one report's *family* of claims are adjusted together by
   Benjamini–Hochberg (``statsmodels.stats.multitest.multipletests``, ``fdr_bh``): the family is
   every (scenario, model, metric) comparison of a **primary** metric in that report (the
   catalog's ``primary`` flag, or the report's ``--primary`` patterns). Under no true
   difference anywhere this holds the chance of any false verdict in the report at ``alpha``;
   with real differences, the expected share of false verdicts among all verdicts at
   ``alpha``. Secondary metrics get their effect size and raw p-value but no verdict.
3. **Verdict**: ``better``/``worse`` (by the sign of the mean difference and the metric's
   direction) when the adjusted p-value is ``<= alpha``; else ``no difference shown``.
4. **Effect size**: the mean difference with a Student t interval (``confidence``), whose
   coverage is checked by simulation at the seed counts we run (``verdict_simulation``). It
   is *not* adjusted for multiplicity and is not what decides: a verdict and an interval that
   excludes 0 can disagree, and the table shows both.

Across scenarios, "A better than B on this metric" is one **stratified** sign-flip test over all
pairs of all the scenarios (:func:`stratified_p_value`), not a count of per-scenario verdicts.

Levels and rates are checked by ``tests/test_verdict_rule.py`` on simulated null data (normal
and skewed noise, n = 3, 5, 6, 10); the power is in ``docs/statistics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

LEVEL = 0.05  # two-sided, after the multiplicity adjustment
CONFIDENCE = 0.95  # of the effect-size interval
CORRECTION = "fdr_bh"  # statsmodels' name: Benjamini-Hochberg
CORRECTION_NAME = "Benjamini–Hochberg"
EXACT_LIMIT = 2 ** 16  # sign patterns enumerated exactly (n <= 16); Monte Carlo beyond
N_RESAMPLES = 9999  # Monte Carlo resamples where the test is not exact
SEED = 0  # of the Monte Carlo resamples: a report's numbers are reproducible

BETTER, WORSE = "better", "worse"
NO_DIFFERENCE = "no difference shown"
SECONDARY = "secondary metric: no verdict"
NO_PAIRS = "no paired values"


def min_pairs(level: float = LEVEL) -> int:
    """The fewest pairs whose exact two-sided sign-flip p-value can reach ``level``
    (``2 / 2^n <= level``): 6 at 0.05, 7 at 0.025, 11 at 0.001."""
    return max(1, math.ceil(math.log2(2 / level) - 1e-12))


def too_few(level: float = LEVEL) -> str:
    """The verdict of a claim with fewer than :func:`min_pairs` pairs."""
    return f"too few seeds for a verdict (need ≥ {min_pairs(level)})"


def sign_flip_p_values(differences: np.ndarray, *, seed: int = SEED) -> np.ndarray:
    """Two-sided sign-flip permutation p-values of the mean, one per row of ``differences``
    (shape ``(..., n)``; exact when ``2^n <= EXACT_LIMIT``). All-zero rows and single pairs
    get 1."""
    from scipy.stats import permutation_test

    differences = np.asarray(differences, dtype=np.float64)
    n = differences.shape[-1]
    if n == 0:
        return np.full(differences.shape[:-1], np.nan)
    if n == 1:  # both sign patterns give the same |mean|
        return np.ones(differences.shape[:-1])
    result = permutation_test(
        (differences,), _mean, permutation_type="samples", alternative="two-sided",
        n_resamples=EXACT_LIMIT if 2 ** n <= EXACT_LIMIT else N_RESAMPLES, vectorized=True,
        axis=-1, random_state=np.random.default_rng(seed))
    return np.minimum(np.asarray(result.pvalue, dtype=np.float64), 1.0)


def adjusted(p_values: Sequence[float], family: Sequence[bool] | None = None) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values over the members of the family (``family``: which
    entries belong; default all). Entries outside it, or NaN, stay NaN."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=np.float64)
    inside = np.isfinite(p) & (np.ones_like(p, bool) if family is None
                               else np.asarray(family, dtype=bool))
    out = np.full_like(p, np.nan)
    if inside.any():
        out[inside] = multipletests(p[inside], alpha=LEVEL, method=CORRECTION)[1]
    return out


def verdict(mean_difference: float, p_adjusted: float, n_pairs: int, direction: str, *,
            primary: bool = True, level: float = LEVEL) -> str:
    """The words of one claim (see the module docstring)."""
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction must be 'lower' or 'higher', got {direction!r}")
    if n_pairs == 0:
        return NO_PAIRS
    if n_pairs < min_pairs(level):
        return too_few(level)
    if not primary:
        return SECONDARY
    if not p_adjusted <= level or mean_difference == 0:
        return NO_DIFFERENCE
    return BETTER if (mean_difference > 0) == (direction == "higher") else WORSE


def t_interval(differences: Sequence[float], confidence: float = CONFIDENCE
               ) -> tuple[float, float]:
    """The Student t interval of the mean difference; NaN for fewer than 2 pairs; zero width
    when every difference is the same."""
    from scipy import stats

    d = np.asarray(differences, dtype=np.float64)
    if len(d) < 2:
        return math.nan, math.nan
    mean, spread = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(len(d))
    if not spread > ROUNDING * max(float(np.abs(d).max()), 1e-300):
        return mean, mean
    half = float(stats.t.ppf(0.5 + confidence / 2, len(d) - 1)) * spread
    return mean - half, mean + half


ROUNDING = 64 * np.finfo(np.float64).eps  # a spread this small (relative) is float noise


def stratified_p_value(strata: Sequence[Sequence[float]], *, seed: int = SEED) -> float:
    """Two-sided p-value of "no difference in any stratum" from one sign-flip test over every
    pair of every stratum (each a scenario's paired differences).

    Statistic: the sum over strata of ``mean(d) / rms(d)`` (each stratum weighs the same
    whatever its metric's scale; ``rms`` is unchanged by sign flips, so the test stays exact
    under exchangeability within pairs). Exact up to 16 pairs in all, Monte Carlo beyond.
    """
    from scipy.stats import permutation_test

    parts = [np.asarray(s, dtype=np.float64) for s in strata if len(s)]
    if not parts:
        return math.nan
    scale = np.concatenate([np.full(len(p), _rms(p) * len(p)) for p in parts])
    d = np.concatenate(parts)
    used = scale > 0
    if not used.any():
        return 1.0
    d, scale = d[used], scale[used]

    def statistic(x, axis=-1):
        return np.sum(x / scale, axis=axis)

    result = permutation_test(
        (d,), statistic, permutation_type="samples", alternative="two-sided",
        n_resamples=EXACT_LIMIT if 2 ** len(d) <= EXACT_LIMIT else N_RESAMPLES,
        vectorized=True, random_state=np.random.default_rng(seed))
    return float(min(result.pvalue, 1.0))


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(values ** 2)))


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)
