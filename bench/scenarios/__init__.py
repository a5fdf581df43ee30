"""Scenarios: an inlier dataset contaminated by an outlier source at rate epsilon.

- :mod:`bench.scenarios.spec`: the frozen :class:`Scenario` spec, its validation, and
  ``scenario.build(seed)`` drawing the training, clean test and mixed test sets
  (:class:`ScenarioData`);
- :mod:`bench.scenarios.registry`: the named scenarios (:data:`SCENARIOS`), families over
  epsilon (``get_scenario("mnist+fmnist@0.15")``), :func:`register_scenario`,
  :func:`register_family` and TOML files (:func:`load_scenario_file`).
"""

from __future__ import annotations

from bench.scenarios.registry import (
    EPSILONS,
    FAMILIES,
    SCENARIOS,
    get_scenario,
    load_scenario_file,
    register_family,
    register_scenario,
)
from bench.scenarios.spec import (
    CLASSES,
    GAUSSIAN_MEAN,
    GAUSSIAN_STD,
    SYNTHETIC,
    Drawn,
    Scenario,
    ScenarioData,
    format_epsilon,
    outlier_count,
    synthetic_images,
)

__all__ = [
    "CLASSES",
    "EPSILONS",
    "FAMILIES",
    "GAUSSIAN_MEAN",
    "GAUSSIAN_STD",
    "SCENARIOS",
    "SYNTHETIC",
    "synthetic_images",
    "Drawn",
    "Scenario",
    "ScenarioData",
    "format_epsilon",
    "get_scenario",
    "load_scenario_file",
    "outlier_count",
    "register_family",
    "register_scenario",
]
