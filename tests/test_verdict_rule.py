"""The verdict rule (bench.report.verdict_rule) holds its stated level: simulated null data at
the seed counts we run, normal and skewed noise, one claim alone and a report's family; its
power and its interval's coverage; its statistics against brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from bench.report import verdict_rule as rule
from bench.report.verdict_simulation import false_verdict_rates, interval_coverage, power

# Monte Carlo error allowance: 3 standard errors of a rate at the stated level.
SIGMAS = 3.0


def _allowed(count: int) -> float:
    return rule.LEVEL + SIGMAS * math.sqrt(rule.LEVEL * (1 - rule.LEVEL) / count)


@pytest.mark.parametrize("noise", ["normal", "skewed"])
@pytest.mark.parametrize("n", [3, 5, 6, 10])
def test_false_verdicts_with_no_true_difference_stay_within_the_stated_level(noise, n):
    family = false_verdict_rates(noise, n, family=20, reports=150, seed=n)
    alone = false_verdict_rates(noise, n, family=1, reports=1500, seed=100 + n)
    assert family.per_claim <= _allowed(family.claims), family
    assert family.per_report <= _allowed(family.reports), family  # any false verdict in a report
    assert alone.per_claim <= _allowed(alone.claims), alone
    if n < rule.min_pairs():
        assert family.per_claim == alone.per_claim == 0.0  # too few seeds: no verdicts at all


def test_a_loosened_rule_would_fail_the_level_test():
    """The level test is not vacuous: without the family's adjustment, 20 claims at 10 seeds
    give a false verdict in most reports; the old bootstrap rule called ~28% of claims at n = 3."""
    rng = np.random.default_rng(0)
    d = rng.normal(size=(150, 20, 10))
    raw = rule.sign_flip_p_values(d.reshape(-1, 10)).reshape(150, 20) <= rule.LEVEL
    assert raw.any(axis=1).mean() > 0.4 > _allowed(150)
    from scipy.stats import bootstrap

    d3 = rng.normal(size=(300, 3))
    interval = bootstrap((d3,), np.mean, axis=-1, method="percentile", n_resamples=999,
                         vectorized=True, random_state=np.random.default_rng(0)).confidence_interval
    assert ((interval.low > 0) | (interval.high < 0)).mean() > 0.15 > _allowed(300)


@pytest.mark.parametrize("n, shift, least", [(10, 2.0, 0.9), (10, 1.0, 0.2)])
def test_the_rule_finds_true_differences_at_ten_seeds(n, shift, least):
    assert power(n, shift, reports=100) >= least


@pytest.mark.parametrize("noise", ["normal", "skewed"])
@pytest.mark.parametrize("n", [3, 5, 6, 10])
def test_the_t_interval_covers_at_its_stated_confidence(noise, n):
    draws = 3000
    coverage = interval_coverage(noise, n, draws=draws, seed=n)
    assert coverage >= rule.CONFIDENCE - SIGMAS * math.sqrt(0.05 * 0.95 / draws)


def test_min_pairs_is_the_smallest_n_whose_exact_p_can_reach_the_level():
    for level in (0.05, 0.025, 0.01, 0.001):
        n = rule.min_pairs(level)
        assert 2 / 2 ** n <= level < 2 / 2 ** (n - 1)
    assert rule.min_pairs() == 6
    assert rule.too_few() == "too few seeds for a verdict (need ≥ 6)"


@pytest.mark.parametrize("n", [1, 4, 7])
def test_sign_flip_p_value_is_the_exact_enumeration(n):
    d = np.random.default_rng(n).normal(size=n)
    flips = [abs(np.mean(d * s)) >= abs(d.mean()) * (1 - 1e-12)
             for s in itertools.product((1, -1), repeat=n)]
    assert float(rule.sign_flip_p_values(d)) == pytest.approx(np.mean(flips))
    assert float(rule.sign_flip_p_values(np.zeros(n))) == 1.0


def test_p_values_of_many_rows_at_once_equal_one_at_a_time():
    d = np.random.default_rng(1).normal(size=(5, 6))
    together = rule.sign_flip_p_values(d)
    assert together.tolist() == [float(rule.sign_flip_p_values(row)) for row in d]


def test_benjamini_hochberg_by_hand_and_only_over_the_family():
    p = [0.01, 0.04, 0.03, 0.5, math.nan]
    family = [True, True, True, False, True]
    adjusted = rule.adjusted(p, family)
    # sorted family p: 0.01, 0.03, 0.04 (m = 3): 0.03, 0.045, 0.04 -> monotone: 0.03, 0.04, 0.04
    assert adjusted[:3].tolist() == pytest.approx([0.03, 0.04, 0.04])
    assert math.isnan(adjusted[3]) and math.isnan(adjusted[4])


@pytest.mark.parametrize("mean, p, n, direction, primary, expected", [
    (-1.0, 0.03, 6, "lower", True, "better"),
    (-1.0, 0.03, 6, "higher", True, "worse"),
    (2.0, 0.03, 6, "higher", True, "better"),
    (2.0, 0.06, 6, "higher", True, "no difference shown"),
    (2.0, 0.001, 5, "higher", True, "too few seeds for a verdict (need ≥ 6)"),
    (2.0, 0.001, 10, "higher", False, "secondary metric: no verdict"),
    (0.0, 0.001, 10, "higher", True, "no difference shown"),
    (math.nan, math.nan, 0, "higher", True, "no paired values"),
    (math.nan, math.nan, 0, "lower", False, "no paired values"),
])
def test_verdict_words(mean, p, n, direction, primary, expected):
    assert rule.verdict(mean, p, n, direction, primary=primary) == expected


def test_t_interval_is_the_textbook_one_and_zero_width_without_spread():
    from scipy import stats

    d = [0.1, 0.4, -0.2, 0.3]
    expected = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert rule.t_interval(d) == pytest.approx((expected.low, expected.high))
    assert rule.t_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)
    assert all(math.isnan(b) for b in rule.t_interval([1.0]))


def test_stratified_p_value_is_exact_and_weighs_strata_alike():
    strata = [[1.0, 2.0, 0.5], [-0.01, 0.02], [0.3]]
    d = np.concatenate([np.asarray(s) for s in strata])
    scale = np.concatenate([np.full(len(s), np.sqrt(np.mean(np.square(s))) * len(s))
                            for s in strata])
    observed = abs(np.sum(d / scale))
    flips = [abs(np.sum(d * s / scale)) >= observed * (1 - 1e-12)
             for s in itertools.product((1, -1), repeat=len(d))]
    assert rule.stratified_p_value(strata) == pytest.approx(np.mean(flips))
    # eight scenarios of three seeds, every one better: 24 pairs decide together
    assert rule.stratified_p_value([[-1.0, -2.0, -1.5]] * 8) < 0.001
    assert rule.stratified_p_value([[0.0, 0.0]]) == 1.0
