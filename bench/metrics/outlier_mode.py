"""Outlier-mode rate: the share of generated samples that look like outliers.

The scenario's domain classifier (``domain.py``) labels every generated sample; the rate is
the fraction assigned to outlier classes: every class of the outlier dataset for
dataset-vs-dataset scenarios, the held-out classes for ``classes`` scenarios, the noise class
for ``uniform-noise`` / ``gaussian-noise``. Metric name: ``outlier_mode_rate_<n>``, lower is
better. A model that learnt an "outlier mode" from contaminated data shows it here.
"""

from __future__ import annotations

from typing import Any

import torch

from bench.metrics.catalog import metric_name
from bench.metrics.domain import NOISE_CLASS, DomainClassifier, domain_classifier

NOISE_OUTLIERS = ("uniform-noise", "gaussian-noise")


def outlier_mode_rate(
    samples: torch.Tensor, classifier: DomainClassifier, outlier_mask: torch.Tensor
) -> float:
    """Fraction of ``samples`` whose predicted class is marked in ``outlier_mask``."""
    if len(samples) == 0:
        raise ValueError("outlier_mode_rate needs at least one sample")
    predicted = classifier.predict(samples)
    return float(outlier_mask[predicted].float().mean())


def outlier_mode_metric_name(n: int) -> str:
    return metric_name("outlier_mode_rate", n=n)


def scenario_domain(scenario: Any, *, seed: int = 0) -> tuple[DomainClassifier, torch.Tensor]:
    """The domain classifier of a scenario and the mask of its outlier classes.

    Dataset outliers: trained on (inlier, outlier), mask = the outlier dataset's classes.
    ``classes``: trained on the inlier dataset, mask = ``scenario.outlier_classes``.
    Noise outliers: trained on the inlier dataset plus a noise class, mask = noise.
    """
    outlier = scenario.outlier
    if getattr(scenario, "outlier_is_dataset", outlier not in ("classes", *NOISE_OUTLIERS)):
        classifier = domain_classifier((scenario.inlier, outlier), seed=seed)
        return classifier, classifier.outlier_class_mask(outlier)
    if outlier == "classes":
        classifier = domain_classifier((scenario.inlier,), seed=seed)
        return classifier, classifier.outlier_class_mask(classes=tuple(scenario.outlier_classes))
    classifier = domain_classifier((scenario.inlier,), seed=seed, noise_class=True)
    return classifier, classifier.outlier_class_mask(NOISE_CLASS)
