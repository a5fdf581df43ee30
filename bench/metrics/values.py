"""The one value type every metric function returns: :class:`MetricValue`.

A value is ``ok`` (a finite number) or ``undefined`` (NaN, with the reason, e.g. AUROC when a
split holds no outliers). ``protocol`` holds everything that makes two values comparable
(extractor and its weights hash, sample counts, metric code version...); it becomes the
record's ``protocol`` field, and reports refuse to aggregate values whose protocols differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

METRIC_CODE_VERSION = 1
"""Bumped whenever a change in this package changes a metric's numbers."""


@dataclass(frozen=True)
class MetricValue:
    """One named metric value with its status, the reason when undefined, and its protocol."""

    metric: str
    value: float
    status: str = "ok"  # "ok" | "undefined"
    reason: str = ""
    protocol: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in ("ok", "undefined"):
            raise ValueError(f"MetricValue status must be 'ok' or 'undefined', got {self.status!r}")
        if self.status == "ok" and not math.isfinite(self.value):
            raise ValueError(f"metric {self.metric!r} is 'ok' but its value is {self.value}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def defined(metric: str, value: float, **protocol: Any) -> MetricValue:
    """An ``ok`` value (the value is converted to a Python float)."""
    return MetricValue(metric, float(value), "ok", "", _protocol(protocol))


def undefined(metric: str, reason: str, **protocol: Any) -> MetricValue:
    """An ``undefined`` value: NaN with the one-line reason why no number exists."""
    return MetricValue(metric, math.nan, "undefined", reason, _protocol(protocol))


def _protocol(protocol: dict[str, Any]) -> dict[str, Any]:
    return {"metric_code_version": METRIC_CODE_VERSION, **protocol}
