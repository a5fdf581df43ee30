"""The verdict rule's error rates, simulated: how often it says better/worse with no true
difference, and how often it finds a true one.

A simulated report holds a family of ``m`` claims; each compares two models over ``n`` seeds.
A seed's value of a model is ``shift + seed effect + noise`` (the seed effect is shared by the
two models of a pair, as the data, outliers and batches of a seed are; the noise is the
model's own). Noise shapes:

- ``normal``: standard normal seed effects and noise;
- ``skewed``: lognormal (sigma 1) seed effects and noise, centred and scaled to unit variance:
  a few seeds far off in one direction, as failed trainings make them;
- ``skewed-difference`` (a limitation, not a guarantee): the *differences* themselves are
  centred exponential, i.e. the two models have the same mean but differently shaped noise.
  No test of a mean can hold its level at small n here; the rule's rate is reported as is.

:func:`false_verdict_rates` gives the per-claim and per-report (any false verdict) rates under
no difference; :func:`power` the share of true differences found. ``python -m
bench.report.verdict_simulation`` prints the table that ``docs/statistics.md`` holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.report import verdict_rule as rule

NOISES = ("normal", "skewed", "skewed-difference")


@dataclass(frozen=True)
class Rates:
    """Simulated rates with their Monte Carlo standard errors."""

    per_claim: float
    per_claim_se: float
    per_report: float
    per_report_se: float
    claims: int
    reports: int


def differences(noise: str, n: int, shape: tuple[int, ...], rng: np.random.Generator
                ) -> np.ndarray:
    """Paired differences (model − reference) of ``shape + (n,)`` under no true difference."""
    size = (*shape, n)
    if noise == "normal":
        seed_effect = rng.normal(size=size)
        return (seed_effect + rng.normal(size=size)) - (seed_effect + rng.normal(size=size))
    if noise == "skewed":
        seed_effect = _lognormal(rng, size)
        return (seed_effect + _lognormal(rng, size)) - (seed_effect + _lognormal(rng, size))
    if noise == "skewed-difference":
        return rng.exponential(size=size) - 1.0
    raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")


def false_verdict_rates(noise: str, n: int, *, family: int = 20, reports: int = 200,
                        seed: int = 0) -> Rates:
    """Verdicts under no true difference: the share of claims called better/worse, and of
    reports with any such claim (``family`` claims each, all of a primary metric)."""
    rng = np.random.default_rng(seed)
    called = _called(differences(noise, n, (reports, family), rng), n)
    per_claim, per_report = float(called.mean()), float(called.any(axis=1).mean())
    return Rates(per_claim, _se(per_claim, called.size), per_report, _se(per_report, reports),
                 called.size, reports)


def power(n: int, shift: float, *, noise: str = "normal", family: int = 20, true: int = 5,
          reports: int = 200, seed: int = 0) -> float:
    """The share of true differences (``true`` of the ``family`` claims, shifted by ``shift``
    noise standard deviations of a difference) that the rule calls, in the right direction."""
    rng = np.random.default_rng(seed)
    d = differences(noise, n, (reports, family), rng)
    scale = math.sqrt(2.0)  # the standard deviation of a difference of two unit-variance noises
    d[:, :true] += shift * scale
    found = _called(d, n, right_sign=True)
    return float(found[:, :true].mean())


def interval_coverage(noise: str, n: int, *, draws: int = 4000, seed: int = 0) -> float:
    """How often the t interval of the mean difference holds the true mean (0)."""
    rng = np.random.default_rng(seed)
    d = differences(noise, n, (draws,), rng)
    bounds = np.array([rule.t_interval(row) for row in d])
    return float(((bounds[:, 0] <= 0) & (bounds[:, 1] >= 0)).mean())


def _called(d: np.ndarray, n: int, right_sign: bool = False) -> np.ndarray:
    """(reports, family) booleans: the rule's verdict is better/worse (positive if asked)."""
    reports, family = d.shape[:2]
    if n < rule.min_pairs():
        return np.zeros((reports, family), dtype=bool)
    p = rule.sign_flip_p_values(d.reshape(-1, n)).reshape(reports, family)
    called = np.stack([rule.adjusted(row) <= rule.LEVEL for row in p])
    return called & (d.mean(axis=-1) > 0) if right_sign else called


def _lognormal(rng: np.random.Generator, size) -> np.ndarray:
    sigma = 1.0
    mean, var = math.exp(sigma ** 2 / 2), (math.exp(sigma ** 2) - 1) * math.exp(sigma ** 2)
    return (rng.lognormal(0.0, sigma, size=size) - mean) / math.sqrt(var)


def _se(rate: float, count: int) -> float:
    return math.sqrt(max(rate * (1 - rate), 0.0) / max(count, 1))


def table() -> str:
    """The Markdown tables of ``docs/statistics.md``: false verdicts, power, interval coverage."""
    lines = [f"False verdicts with no true difference (family of 20 primary claims, 200 reports; "
             f"stated level {rule.LEVEL:g}):", "",
             "| noise | n | per claim | any in a report | one claim alone |",
             "|---|---:|---:|---:|---:|"]
    for noise in NOISES:
        for n in (3, 5, 6, 10):
            rates = false_verdict_rates(noise, n)
            alone = false_verdict_rates(noise, n, family=1, reports=4000)
            lines.append(f"| {noise} | {n} | {rates.per_claim:.4f} | {rates.per_report:.3f} | "
                         f"{alone.per_claim:.4f} |")
    lines += ["", "Power: share of true differences found (5 shifted of 20 claims, normal noise; "
              "shift in standard deviations of a paired difference):", "",
              "| n | shift 0.5 | shift 1 | shift 2 |", "|---:|---:|---:|---:|"]
    for n in (6, 10):
        lines.append(f"| {n} | " + " | ".join(f"{power(n, s):.2f}" for s in (0.5, 1, 2)) + " |")
    lines += ["", "Coverage of the 95% t interval of the mean difference:", "",
              "| noise | n = 3 | n = 5 | n = 6 | n = 10 |", "|---|---:|---:|---:|---:|"]
    for noise in NOISES:
        lines.append(f"| {noise} | " + " | ".join(
            f"{interval_coverage(noise, n):.3f}" for n in (3, 5, 6, 10)) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table(), end="")
