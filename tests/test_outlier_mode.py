"""Outlier-mode rate (real MNIST / Fashion-MNIST) and the per-cell evaluation entry point."""

from __future__ import annotations

import functools
import time
from types import SimpleNamespace

import pytest
import torch

from bench.metrics import domain as domain_module
from bench.metrics import outlier_mode as outlier_mode_module
from bench.metrics.domain import DomainRecipe, domain_classifier
from bench.metrics.evaluate import METRICS, evaluate_cell
from bench.metrics.outlier_mode import outlier_mode_rate, scenario_domain

FAST = DomainRecipe(per_class=60, epochs=2, batch_size=32)


@pytest.mark.slow  # trains the real MNIST + F-MNIST classifier on a cold cache (~15-40 s, 2 cores)
def test_outlier_mode_rate_on_real_images(real_data):
    from bench.data import load_dataset

    clf = domain_classifier(("mnist", "fmnist"))
    assert clf.report["test_dataset_accuracy"] > 0.99 and clf.report["test_accuracy"] > 0.8
    mask = clf.outlier_class_mask("fmnist")
    mnist = load_dataset("mnist", "test").images[:2000].float() / 255
    fmnist = load_dataset("fmnist", "test").images[:2000].float() / 255
    assert outlier_mode_rate(mnist, clf, mask) < 0.02
    assert outlier_mode_rate(fmnist, clf, mask) > 0.98
    mixed = torch.cat([mnist[:1500], fmnist[:500]])
    assert outlier_mode_rate(mixed, clf, mask) == pytest.approx(0.25, abs=0.02)


def bars_loader(name: str, split: str = "train"):
    """'bars-h' / 'bars-v': a bright horizontal / vertical bar at one of 4 positions (the class)."""
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    labels = torch.arange(400) % 4
    x = torch.rand(400, 1, 28, 28, generator=g) * 0.3
    for i, c in enumerate(labels.tolist()):
        if name == "bars-h":
            x[i, :, 3 + 6 * c : 6 + 6 * c, :] += 0.7
        else:
            x[i, :, :, 3 + 6 * c : 6 + 6 * c] += 0.7
    return SimpleNamespace(
        images=(x.clamp(0, 1) * 255).round().to(torch.uint8),
        labels=labels,
        classes=("0", "1", "2", "3"),
    )


@pytest.fixture
def synthetic_domain(tmp_path, monkeypatch):
    """Domain classifiers trained on the synthetic bars (fast recipe), isolated cache."""
    monkeypatch.setenv("RVQVAE_HOME", str(tmp_path))
    monkeypatch.setattr(domain_module, "_LOADED_BY_KEY", {})
    monkeypatch.setattr(
        outlier_mode_module,
        "domain_classifier",
        functools.partial(domain_classifier, recipe=FAST, loader=bars_loader),
    )
    return tmp_path


def test_scenario_domain_masks(synthetic_domain):
    dataset = SimpleNamespace(inlier="bars-h", outlier="bars-v", outlier_is_dataset=True)
    clf, mask = scenario_domain(dataset)
    assert clf.datasets == ("bars-h", "bars-v") and mask.tolist() == [False] * 4 + [True] * 4
    held_out = SimpleNamespace(
        inlier="bars-h", outlier="classes", outlier_classes=(2, 3), outlier_is_dataset=False
    )
    clf, mask = scenario_domain(held_out)
    assert clf.datasets == ("bars-h",) and mask.tolist() == [False, False, True, True]
    noise = SimpleNamespace(inlier="bars-h", outlier="gaussian-noise", outlier_is_dataset=False)
    clf, mask = scenario_domain(noise)
    assert clf.class_names[-1] == "noise" and mask.tolist() == [False] * 4 + [True]
    vertical = bars_loader("bars-v", "test").images.float() / 255
    assert outlier_mode_rate(vertical, *scenario_domain(dataset)) > 0.95


class FakeModel:
    """Samples 3/4 inlier bars and 1/4 outlier bars; reconstructs with a fixed 0.1 offset."""

    def sample(self, n, seed=0):
        h, v = bars_loader("bars-h", "test").images, bars_loader("bars-v", "test").images
        images = torch.cat([h[: n - n // 4], v[: n // 4]]).float() / 255
        return images

    def reconstruct(self, images):
        return images + 0.1

    def outlier_scores(self, images):
        vertical = images[:, 0].mean(1).amax(1)  # column means: high for a vertical bar
        return {"recon": vertical, "inverse": -vertical}

    def codebook_perplexity(self, images):
        return 7.0


def synthetic_domain_scenario():
    return SimpleNamespace(inlier="bars-h", outlier="bars-v", outlier_is_dataset=True,
                           inlier_classes=None, epsilon=0.25)


def test_evaluate_cell_with_a_fake_model(synthetic_domain):
    scenario = synthetic_domain_scenario()
    h, v = (
        bars_loader("bars-h", "test").images.float() / 255,
        bars_loader("bars-v", "test").images.float() / 255,
    )
    flags = torch.tensor([False] * 300 + [True] * 100)
    data = SimpleNamespace(
        train_images=torch.cat([h[:300], v[:100]]),
        train_is_outlier=flags,
        clean_test_images=h,
        mixed_test_images=h[:50],
        mixed_test_is_outlier=torch.zeros(50, dtype=torch.bool),
    )
    start = time.perf_counter()
    values = {v.metric: v for v in evaluate_cell(FakeModel(), data, scenario, n_samples=400)}
    assert time.perf_counter() - start < 60  # generous; the timing is measured, not tested, here
    assert set(METRICS.names()) == {"detection", "generation", "health", "outlier_mode",
                                    "perplexity", "reconstruction", "training"}
    assert "train_images_per_s" not in values  # no fit record: nothing to measure
    assert values["outlier_mode_rate_400"].value == pytest.approx(0.25, abs=0.01)
    assert values["recon_mse_clean_test"].value == pytest.approx(0.01, rel=1e-5)
    assert values["perplexity"].value == 7.0
    assert values["auroc_transductive_recon"].value > 0.99
    assert values["auroc_transductive_inverse"].value < 0.01
    assert values["auroc_inductive_recon"].status == "undefined"  # mixed split without outliers
    fid = values["fid_domain_400"]
    assert fid.ok and fid.value > 1.0 and fid.protocol["n_reference"] == 400
    assert fid.protocol["extractor_weights"] and fid.protocol["kid_subset_size"] == 400
    assert fid.protocol["metric_code_version"] == 1
    # 400 samples, subsets of 400: every subset is the whole sample, so the spread is undefined
    kid_std = values["kid_domain_400_std"]
    assert kid_std.status == "undefined" and "every KID subset holds all 400" in kid_std.reason
    assert values["kid_domain_400"].ok


def test_an_extractor_built_on_the_domain_classifier_gets_it_in_a_cell(synthetic_domain):
    """A registered extractor with needs_domain=True (a plugin's, say) is passed the
    scenario's classifier inside a cell, as the built-in `domain` is."""
    from bench.metrics.domain import register_with_fidelity
    from bench.metrics.extractors import EXTRACTORS, FeatureExtractorSpec

    @EXTRACTORS.register("test-domain-logits", needs_domain=True)
    def _logits(*, domain=None, **_):
        assert domain is not None, "the cell did not pass the domain classifier"
        return FeatureExtractorSpec("test-domain-logits", register_with_fidelity(domain),
                                    domain.weights_hash, len(domain.class_names), "logits")

    try:
        h = bars_loader("bars-h", "test").images.float() / 255
        data = SimpleNamespace(clean_test_images=h)
        values = evaluate_cell(FakeModel(), data, synthetic_domain_scenario(), n_samples=100,
                               extractor="test-domain-logits", metrics=["generation"])
    finally:
        EXTRACTORS.unregister("test-domain-logits")
    fid = {v.metric: v for v in values}["fid_test-domain-logits_100"]
    assert fid.ok and fid.protocol["feature_layer"] == "logits"


def test_metric_groups_return_their_artefacts_and_training_throughput(synthetic_domain):
    """Scores come back as the detection group's artefact (no context is mutated), samples are
    drawn once for every extractor's context, and the training group measures the fit."""
    from bench.metrics.evaluate import EvalContext, FitRecord, run_metrics

    h = torch.rand(60, 1, 28, 28)
    flags = torch.zeros(60, dtype=torch.bool)
    flags[:15] = True
    data = SimpleNamespace(train_images=h, train_is_outlier=flags, clean_test_images=h[:20],
                           mixed_test_images=h[:20],
                           mixed_test_is_outlier=torch.zeros(20, dtype=torch.bool))
    ctx = EvalContext(FakeModel(), data, synthetic_domain_scenario(), n_samples=50,
                      fit=FitRecord(n_images=60, epochs=3, seconds=2.0))
    measured = run_metrics(ctx, ["detection", "training"])
    scores = measured.artefacts["scores"]
    assert set(scores) == {"transductive", "inductive"}
    assert torch.equal(scores["transductive"]["is_outlier"], flags)
    throughput = {v.metric: v for v in measured.values}["train_images_per_s"]
    assert throughput.value == 90.0 and throughput.protocol == {"threads": torch.get_num_threads()}
    assert ctx.with_extractor("inception").samples is ctx.samples  # drawn once, shared


def test_evaluate_cell_runs_only_selected_metrics_and_nan_samples_are_undefined(synthetic_domain):
    class Broken(FakeModel):
        def sample(self, n, seed=0):
            return torch.full((n, 1, 28, 28), float("nan"))

    scenario = SimpleNamespace(
        inlier="bars-h", outlier="bars-v", outlier_is_dataset=True, inlier_classes=None
    )
    data = SimpleNamespace(clean_test_images=bars_loader("bars-h", "test").images.float() / 255)
    values = evaluate_cell(
        Broken(), data, scenario, n_samples=100, metrics=["generation", "outlier_mode"]
    )
    assert [(v.metric, v.status) for v in values] == [
        ("fid_domain_100", "undefined"),
        ("kid_domain_100", "undefined"),
        ("kid_domain_100_std", "undefined"),  # named by the extractor's label, spread included
        ("outlier_mode_rate_100", "undefined"),
    ]
    assert values[0].reason == "the model's samples hold NaN/infinite values"
