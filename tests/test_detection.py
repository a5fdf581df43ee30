"""Outlier-detection metrics agree with sklearn and follow the documented conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from torchmetrics.functional.classification import binary_auroc

from bench.metrics.detection import detection_metrics


def as_dict(values):
    return {v.metric: v for v in values}


def sklearn_reference(score: torch.Tensor, is_outlier: torch.Tensor) -> dict[str, float]:
    y, x = is_outlier.numpy().astype(int), score.double().numpy()
    fpr, tpr, _ = roc_curve(y, x, drop_intermediate=False)
    return {
        "auroc": roc_auc_score(y, x),
        "aupr_out": average_precision_score(y, x),
        "aupr_in": average_precision_score(1 - y, -x),
        "fpr95": fpr[np.argmax(tpr >= 0.95)],
    }


def test_perfect_score_and_its_negation():
    is_outlier = torch.tensor([0, 0, 0, 1, 1, 0, 1, 0], dtype=torch.bool)
    perfect = is_outlier.float() * 2 + 0.1 * torch.arange(8)
    values = as_dict(detection_metrics({"s": perfect, "neg": -perfect}, is_outlier))
    assert [
        values[f"{m}_transductive_s"].value for m in ("auroc", "aupr_out", "aupr_in", "fpr95")
    ] == [1.0, 1.0, 1.0, 0.0]
    assert values["auroc_transductive_neg"].value == 0.0
    assert values["fpr95_transductive_neg"].value == 1.0
    assert all(v.ok and v.protocol["n_outliers"] == 3 for v in values.values())


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_sklearn_including_ties_and_large_scores(seed):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(50, 3000, (1,), generator=g))
    is_outlier = torch.rand(n, generator=g) < 0.15
    is_outlier[:2] = torch.tensor([True, False])
    ties = torch.randint(0, 40, (n,), generator=g).float()  # many ties
    smooth = torch.randn(n, generator=g) + 1.5 * is_outlier
    large = 50.0 + ties * 0.5 + 2.0 * is_outlier * torch.rand(n, generator=g)  # far outside [0, 1]
    scores = {
        "ties": ties + is_outlier * torch.randint(0, 8, (n,), generator=g),
        "smooth": smooth,
        "large": large,
    }
    values = as_dict(detection_metrics(scores, is_outlier, mode="inductive"))
    for name, score in scores.items():
        for metric, expected in sklearn_reference(score, is_outlier).items():
            got = values[f"{metric}_inductive_{name}"].value
            assert got == pytest.approx(expected, abs=1e-6), (name, metric)


def test_large_scores_are_not_squashed_by_torchmetrics_sigmoid():
    # torchmetrics treats values outside [0, 1] as logits; in float32 sigmoid(50 + x) == 1.0
    is_outlier = torch.tensor([0, 0, 1, 1, 0, 1])
    score = torch.tensor([50.0, 51.0, 52.0, 53.0, 50.5, 54.0])
    assert float(binary_auroc(score, is_outlier)) == 0.5  # the trap this module avoids
    assert as_dict(detection_metrics({"s": score}, is_outlier))["auroc_transductive_s"].value == 1.0


def test_fpr95_is_exact_at_the_tpr_boundary():
    # 20 outliers: 19 of them (TPR exactly 0.95) sit above every inlier but one at 10.5, which
    # ranks just below the 19th. In float32 19/20 < 0.95, which would wrongly include 10.5.
    outliers = torch.arange(10, 30).float()
    inliers = torch.cat([torch.arange(0, 9).float(), torch.tensor([10.5])])
    score = torch.cat([outliers, inliers])
    is_outlier = torch.cat([torch.ones(20), torch.zeros(10)]).bool()
    values = as_dict(detection_metrics({"s": score}, is_outlier))
    assert values["fpr95_transductive_s"].value == 0.0
    assert sklearn_reference(score, is_outlier)["fpr95"] == 0.0


@pytest.mark.parametrize(
    "flags, reason",
    [
        (
            torch.zeros(10, dtype=torch.bool),
            "the transductive split holds no outliers (epsilon = 0): detection is undefined",
        ),
        (
            torch.ones(10, dtype=torch.bool),
            "the transductive split holds only outliers: detection is undefined",
        ),
    ],
)
def test_single_class_splits_are_undefined_not_a_number(flags, reason):
    values = detection_metrics({"recon": torch.rand(10)}, flags)
    assert len(values) == 4
    for value in values:
        assert value.status == "undefined" and math.isnan(value.value) and value.reason == reason


def test_nonfinite_scores_make_only_that_score_undefined():
    is_outlier = torch.tensor([0, 1, 0, 1, 0], dtype=torch.bool)
    bad = torch.tensor([0.1, float("nan"), 0.3, float("inf"), 0.2])
    values = as_dict(detection_metrics({"bad": bad, "good": torch.arange(5.0)}, is_outlier))
    assert values["auroc_transductive_bad"].status == "undefined"
    assert values["auroc_transductive_bad"].reason == "score 'bad' has 2 NaN/infinite value(s) of 5"
    assert values["auroc_transductive_good"].ok


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="score 's' has 3 values but there are 4 outlier flags"):
        detection_metrics({"s": torch.rand(3)}, torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="detection mode must be one of"):
        detection_metrics({"s": torch.rand(4)}, torch.tensor([0, 1, 0, 1]), mode="transductiv")
