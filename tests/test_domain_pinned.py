"""Pinned domain classifiers: same weights and features on every machine, tamper-checked."""

from __future__ import annotations

import shutil

import pytest
import torch

from bench.metrics import domain as domain_module
from bench.metrics import domain_pinned
from bench.metrics.domain import DomainRecipe, domain_classifier
from bench.metrics.domain_pinned import PINNED_SETS, features_checksum
from bench.metrics.outlier_mode import scenario_domain
from bench.scenarios import get_scenario
from rvqvae.errors import UserError


@pytest.fixture(autouse=True)
def fresh_loaded(monkeypatch):
    monkeypatch.setattr(domain_module, "_LOADED_BY_KEY", {})


@pytest.mark.parametrize("name", sorted(PINNED_SETS))
def test_pinned_features_match_the_committed_checksum(name):
    """The cross-machine promise: these numbers were recorded where the weights were trained."""
    datasets, noise_class = PINNED_SETS[name]
    classifier = domain_classifier(datasets, noise_class=noise_class)
    entry = domain_pinned._manifest()[name]
    assert classifier.source == f"pinned-v{entry['pin_version']}:{name}"
    expected, got = entry["features_checksum"], features_checksum(classifier)
    assert got["sum"] == pytest.approx(expected["sum"], rel=1e-5)
    assert got["sum_sq"] == pytest.approx(expected["sum_sq"], rel=1e-5)
    assert got["row0_first8"] == pytest.approx(expected["row0_first8"], rel=1e-4, abs=1e-5)
    assert got["predicted"] == expected["predicted"]


def test_registered_scenarios_use_pinned_classifiers():
    sources = {name: scenario_domain(get_scenario(name))[0].source
               for name in ("mnist+fmnist@0.2", "fmnist+mnist@0.2", "mnist3+rest@0.1",
                            "mnist+uniform@0.2", "mnist+gaussian@0.4")}
    assert sources == {
        "mnist+fmnist@0.2": "pinned-v1:mnist+fmnist", "fmnist+mnist@0.2": "pinned-v1:mnist+fmnist",
        "mnist3+rest@0.1": "pinned-v1:mnist", "mnist+uniform@0.2": "pinned-v1:mnist+noise",
        "mnist+gaussian@0.4": "pinned-v1:mnist+noise",
    }
    # dataset order does not matter: outlier classes are named, not numbered
    classifier, mask = scenario_domain(get_scenario("fmnist+mnist@0.2"))
    marked = [n for n, m in zip(classifier.class_names, mask.tolist(), strict=True) if m]
    assert len(marked) == 10 and all(n.startswith("mnist:") for n in marked)


def test_pinned_classifier_accuracy_is_recorded_and_real():
    classifier = domain_classifier(("fmnist", "mnist"))
    assert classifier.report["test_accuracy"] > 0.88
    assert classifier.report["test_dataset_accuracy"] > 0.99


def test_a_tampered_pinned_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "pinned"
    shutil.copytree(domain_pinned.PINNED_DIR, copy)
    target = copy / "domain-v1-mnist.pt"
    data = bytearray(target.read_bytes())
    data[-100] ^= 0xFF
    target.write_bytes(bytes(data))
    monkeypatch.setattr(domain_pinned, "PINNED_DIR", copy)
    with pytest.raises(UserError, match=r"domain-v1-mnist\.pt has sha256 .*reinstall"):
        domain_classifier(("mnist",))


def test_other_seed_or_recipe_trains_locally(tmp_path, monkeypatch):
    monkeypatch.setenv("RVQVAE_HOME", str(tmp_path))
    from test_extractors import FAST, synthetic_loader

    local = domain_classifier(("bars-h",), recipe=FAST, loader=synthetic_loader)
    assert local.source == "local"
    assert domain_pinned.pinned_entry(("mnist",), False, 1, vars(DomainRecipe())) is None
    assert domain_pinned.pinned_entry(("mnist",), False, 0, vars(FAST)) is None


def test_a_corrupt_local_cache_file_is_named_and_retrained(tmp_path, monkeypatch):
    monkeypatch.setenv("RVQVAE_HOME", str(tmp_path))
    from test_extractors import FAST, synthetic_loader

    first = domain_classifier(("bars-h",), recipe=FAST, loader=synthetic_loader)
    (cached,) = (tmp_path / "domain").glob("domain-*.pt")
    cached.write_bytes(b"not a checkpoint")
    monkeypatch.setattr(domain_module, "_LOADED_BY_KEY", {})
    with pytest.warns(UserWarning, match=rf"{cached.name} is unreadable"):
        again = domain_classifier(("bars-h",), recipe=FAST, loader=synthetic_loader)
    assert again.weights_hash == first.weights_hash
    assert torch.load(cached, weights_only=True)["weights_hash"] == first.weights_hash
