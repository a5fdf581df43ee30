"""When does a metric's change count as a regression? A one-sided test over seeds, with a floor.

Training is chaotic: another CPU's float order, another thread count or another seed set moves
single-seed metrics far (an outlier-mode rate 0.21 -> 0.30 on unchanged code). So the gate
compares **means over seeds**, and asks whether the candidate's mean is what more seeds of the
baseline would give: it lies inside the baseline's one-sided **prediction interval** for the
mean of ``n_c`` new seeds,

    allowed = max(floor, t_(1 - level, n_b - 1) * s_b * sqrt(1 / n_b + 1 / n_c))

- ``s_b`` is the baseline's sample std over its ``n_b`` seeds. The null hypothesis is "same
  code": the candidate's seeds come from the baseline's distribution, so the baseline's spread
  is the yardstick. The candidate's own spread is not used: a regression that makes training
  fail in some seeds widens it, and must not buy itself a wider allowance (a Welch test lets
  it: with 3 candidate seeds, one collapsed, Welch's df falls to ~2 and t_(0.999) to ~22).
  With one baseline seed the candidate's spread stands in (``df = n_c - 1``); with one seed on
  both sides only the floor applies.
- ``level`` is the one-sided level per metric (``DEFAULT_LEVEL`` = 0.001: a stated false alarm
  rate of 1 in 1000 per metric under normality; a gate compares ~150 metrics).
- ``floor = max(abs, rel * |baseline mean|)``: changes smaller than this never count, however
  tight the seeds (identical reruns have s = 0).

A change beyond ``allowed`` in the metric's bad direction is a regression, in its good
direction an improvement. ``p`` (reported) is the one-sided p-value of the observed change.

A metric's floor is its catalog entry's (``abs``, ``rel`` in :mod:`bench.metrics.catalog`).
A TOML file (the packaged ``bench/tolerances.toml`` by default) sets the test level and the
floor of metrics the catalog does not know, and may override any metric by pattern::

    [gate]
    level = 0.001              # the default one-sided test level
    [default]                  # the floor of metrics the catalog does not know
    rel = 0.05
    [metrics]                  # optional overrides: fnmatch patterns, first match wins
    "auroc_*" = { abs = 0.005, level = 0.0001 }
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from pathlib import Path

from scipy import stats

from rvqvae.errors import UserError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

DEFAULT_LEVEL = 0.001
DEFAULT_TOLERANCES = Path(__file__).resolve().parent / "tolerances.toml"  # package data


@dataclass(frozen=True)
class Tolerance:
    """A metric's floor (``abs``, ``rel`` of |baseline|) and one-sided test ``level``."""

    abs: float = 0.0
    rel: float = 0.0
    level: float = DEFAULT_LEVEL

    def floor(self, baseline: float) -> float:
        return max(self.abs, self.rel * abs(baseline))


@dataclass(frozen=True)
class Tolerances:
    """``(pattern, tolerance)`` overrides (the first matching wins), then the metric's catalog
    floor at the default's level (unless ``catalog=False``), then the default."""

    default: Tolerance = Tolerance(rel=0.05)
    overrides: tuple[tuple[str, Tolerance], ...] = ()
    source: str = "built-in default (rel 0.05, level 0.001)"
    catalog: bool = True

    def for_metric(self, metric: str) -> Tolerance:
        for pattern, tolerance in self.overrides:
            if fnmatch.fnmatchcase(metric, pattern):
                return tolerance
        if self.catalog:
            from bench.metrics.catalog import metric_family

            try:
                entry = metric_family(metric)
            except KeyError:
                return self.default
            return Tolerance(abs=entry.abs, rel=entry.rel, level=self.default.level)
        return self.default


    def unmatched(self, metrics) -> list[str]:
        """The override patterns that match none of ``metrics`` (a typo disables nothing)."""
        return [pattern for pattern, _ in self.overrides
                if not any(fnmatch.fnmatchcase(str(metric), pattern) for metric in metrics)]

    def check_patterns(self, metrics) -> None:
        """Raise :class:`UserError` naming each override pattern that matches none of
        ``metrics``, with the closest metric names: the comparison would silently ignore it."""
        unmatched = self.unmatched(metrics)
        if not unmatched:
            return
        import difflib

        names = sorted({str(metric) for metric in metrics})
        closest = difflib.get_close_matches(unmatched[0], names, n=2, cutoff=0.4) or names[:2]
        raise UserError(
            f"tolerance file {self.source}: [metrics] pattern(s) "
            f"{', '.join(repr(p) for p in unmatched)} match no metric of the compared results "
            f"(closest: {', '.join(closest) or 'none'}); fix or remove them")


@dataclass(frozen=True)
class Allowance:
    """How far a mean may move (``allowed``), and the one-sided p-value of the observed move."""

    allowed: float
    p_value: float  # NaN when there is no spread to test with
    rule: str  # "prediction", "prediction (candidate spread)" or "floor"


def allowance(tolerance: Tolerance, change: float, baseline: tuple[float, float, int],
              candidate: tuple[float, int]) -> Allowance:
    """The allowance for ``change`` = candidate mean - baseline mean.

    ``baseline`` is ``(mean, std, n)``, ``candidate`` is ``(std, n)``; a std is NaN for n < 2.
    """
    mean_b, std_b, n_b = baseline
    std_c, n_c = candidate
    floor = tolerance.floor(mean_b)
    spread = _standard_error(std_b, n_b, std_c, n_c)
    if spread is None:
        return Allowance(floor, math.nan, "floor")
    se, df, rule = spread
    if se == 0:
        return Allowance(floor, 0.0 if change else 1.0, rule)
    critical = float(stats.t.ppf(1 - tolerance.level, df)) * se
    p_value = float(stats.t.sf(abs(change) / se, df))
    return Allowance(max(floor, critical), p_value, rule)


def _standard_error(std_b, n_b, std_c, n_c) -> tuple[float, float, str] | None:
    """(se, df, rule) of the difference of means under "same distribution", or None."""
    scale = math.sqrt(1 / max(n_b, 1) + 1 / max(n_c, 1))
    if n_b > 1 and math.isfinite(std_b):
        return std_b * scale, n_b - 1, "prediction"
    if n_c > 1 and math.isfinite(std_c):
        return std_c * scale, n_c - 1, "prediction (candidate spread)"
    return None


def load_tolerances(path: str | Path | None = None) -> Tolerances:
    """Floors and levels from a TOML file (format in the module docstring).

    ``None`` reads the packaged defaults, ``bench/tolerances.toml`` (also the CI gate's).
    """
    if path is None:
        if not DEFAULT_TOLERANCES.is_file():
            return Tolerances()
        path = DEFAULT_TOLERANCES
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"tolerance file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"tolerance file {path} is not valid TOML ({error})") from None
    unknown = sorted(set(data) - {"gate", "default", "metrics"})
    if unknown:
        raise UserError(f"tolerance file {path}: unknown table {unknown[0]!r}; "
                        f"use [gate], [default] and [metrics]")
    gate = data.get("gate", {})
    if not isinstance(gate, dict) or set(gate) - {"level"}:
        raise UserError(f"tolerance file {path}: [gate] takes only level")
    level = _number(gate.get("level", DEFAULT_LEVEL), path, "[gate] level", below_one=True)
    default = _tolerance(data.get("default", {"rel": 0.05}), path, "[default]", level)
    if not isinstance(data.get("metrics", {}), dict):
        raise UserError(f"tolerance file {path}: [metrics] must be a table of patterns")
    overrides = tuple((pattern, _tolerance(value, path, f"metrics.{pattern!r}", level))
                      for pattern, value in data.get("metrics", {}).items())
    return Tolerances(default, overrides, str(path))


def _tolerance(value, path: Path, where: str, level: float) -> Tolerance:
    if not isinstance(value, dict):
        raise UserError(f"tolerance file {path}: {where} must be a table like {{ rel = 0.1 }}")
    unknown = sorted(set(value) - {"abs", "rel", "level"})
    if unknown:
        raise UserError(f"tolerance file {path}: {where} has unknown key {unknown[0]!r}; "
                        f"use abs, rel or level")
    numbers = {key: _number(number, path, f"{where} {key}", below_one=key == "level")
               for key, number in value.items()}
    return Tolerance(**{"level": level, **numbers})


def _number(number, path: Path, where: str, *, below_one: bool = False) -> float:
    if (isinstance(number, bool) or not isinstance(number, (int, float))
            or not math.isfinite(number) or number < 0 or (below_one and not 0 < number < 1)):
        wanted = "a number in (0, 1)" if below_one else "a finite number >= 0"
        raise UserError(f"tolerance file {path}: {where} must be {wanted}, got {number!r}")
    return float(number)
