"""Evaluation metrics: FID/KID (torch-fidelity), outlier detection (torchmetrics), outlier-mode
rate, reconstruction error and codebook perplexity; ``evaluate_cell`` runs them for one cell.

Names are re-exported lazily so that ``import bench.metrics.catalog`` (used by reports) does not
import torch-fidelity.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "evaluate_cell": "evaluate",
    "METRICS": "evaluate",
    "EvalContext": "evaluate",
    "MetricValue": "values",
    "generation_metrics": "fid",
    "detection_metrics": "detection",
    "domain_classifier": "domain",
    "DomainClassifier": "domain",
    "EXTRACTORS": "extractors",
    "outlier_mode_rate": "outlier_mode",
    "reconstruction_mse": "reconstruction",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"bench.metrics.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'bench.metrics' has no attribute {name!r}")
