"""FID/KID glue: agreement with torch-fidelity and with an independent Frechet distance,
self-distance ~ 0, small-n adaptation, and reference-statistics caching keyed by content."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.linalg
import torch

from bench.metrics import domain as domain_module
from bench.metrics.domain import DomainRecipe, domain_classifier
from bench.metrics.fid import (
    UInt8Images,
    generation_metrics,
    generation_metrics_with_protocol,
    kid_std_undefined,
    to_uint8,
)

FAST = DomainRecipe(per_class=60, epochs=2, batch_size=32)


def bars(name: str, n: int, seed: int) -> torch.Tensor:
    """n float images in [0, 1] with a noisy bar (horizontal for 'bars-h', vertical otherwise)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g) * 0.3
    where = torch.randint(0, 4, (n,), generator=g)
    for i, c in enumerate(where.tolist()):
        if name == "bars-h":
            x[i, :, 3 + 6 * c : 6 + 6 * c, :] += 0.7
        else:
            x[i, :, :, 3 + 6 * c : 6 + 6 * c] += 0.7
    return (x.clamp(0, 1) * 255).round() / 255


def loader(name: str, split: str = "train"):
    images = bars(name, 400, seed=0 if split == "train" else 1)
    labels = torch.tensor(
        [
            int(torch.nonzero(img.mean(-1 if name == "bars-h" else -2).flatten() > 0.5)[0]) // 6
            for img in images
        ]
    )
    return SimpleNamespace(
        images=(images * 255).round().to(torch.uint8), labels=labels, classes=("0", "1", "2", "3")
    )


@pytest.fixture
def classifier(tmp_path, monkeypatch):
    monkeypatch.setenv("RVQVAE_HOME", str(tmp_path))
    monkeypatch.setattr(domain_module, "_LOADED_BY_KEY", {})
    return domain_classifier(("bars-h", "bars-v"), recipe=FAST, loader=loader)


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Independent FID in float64: tr sqrt(S1 S2) = sum sqrt(eig(S1^1/2 S2 S1^1/2)), a symmetric
    PSD form that stays accurate for the rank-deficient covariances of ReLU features."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = scipy.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_covmean = np.sqrt(np.clip(scipy.linalg.eigvalsh(root1 @ s2 @ root1), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def test_fid_kid_equal_torch_fidelity_and_an_independent_frechet(classifier):
    from torch_fidelity import calculate_metrics

    samples = bars("bars-h", 300, seed=5) * 0.9 + 0.05  # slightly off-distribution
    reference = bars("bars-h", 400, seed=6)
    ours = generation_metrics(samples, reference, domain=classifier, reference_key="bars-h-test")
    assert set(ours) == {"fid_domain_300", "kid_domain_300", "kid_domain_300_std"}
    direct = calculate_metrics(
        input1=UInt8Images(to_uint8(samples)),
        input2=UInt8Images(to_uint8(reference)),
        fid=True,
        kid=True,
        feature_extractor=classifier.extractor_name,
        kid_subset_size=300,
        cuda=False,
        cache=False,
        verbose=False,
        save_cpu_ram=True,
    )
    assert ours["fid_domain_300"] == pytest.approx(direct["frechet_inception_distance"], rel=1e-6)
    assert ours["kid_domain_300"] == pytest.approx(
        direct["kernel_inception_distance_mean"], rel=1e-6
    )
    feats = [classifier.features(to_uint8(x)).double().numpy() for x in (samples, reference)]
    assert ours["fid_domain_300"] == pytest.approx(frechet(*feats), rel=1e-5)
    assert ours["fid_domain_300"] > 1.0


def test_fid_of_a_set_with_itself_is_zero_and_other_domain_is_far(classifier):
    reference = bars("bars-h", 400, seed=6)
    same = generation_metrics(reference, reference, domain=classifier, cache=False)
    assert abs(same["fid_domain_400"]) < 1e-3
    # (KID of a set with itself is slightly negative by construction: unbiased MMD estimator)
    near = generation_metrics(
        bars("bars-h", 400, seed=8), reference, domain=classifier, cache=False
    )
    far = generation_metrics(bars("bars-v", 400, seed=8), reference, domain=classifier, cache=False)
    assert 0 < near["fid_domain_400"] < far["fid_domain_400"] / 10
    assert abs(near["kid_domain_400"]) < far["kid_domain_400"] / 20


def test_small_n_warns_and_adapts_kid_subset(classifier):
    with pytest.warns(UserWarning) as caught:
        values = generation_metrics(
            bars("bars-h", 20, seed=3), bars("bars-h", 400, seed=6), domain=classifier, cache=False
        )
    messages = [str(w.message) for w in caught]
    assert any(
        m.startswith(
            "FID with 20 samples / 400 reference images below the domain feature dimension 128"
        )
        for m in messages
    )
    assert (
        "KID subset size reduced from 1000 to 20 to fit 20 samples and 400 reference images; "
        "KID is noisier" in messages
    )
    assert set(values) == {"fid_domain_20", "kid_domain_20", "kid_domain_20_std"}
    assert np.isfinite(values["fid_domain_20"]) and np.isfinite(values["kid_domain_20"])
    # every KID subset holds all 20 samples: its spread over subsets means nothing
    assert np.isnan(values["kid_domain_20_std"])
    assert kid_std_undefined(20, 20).startswith("every KID subset holds all 20 samples")
    assert kid_std_undefined(21, 20) == ""


def test_reference_statistics_cache_is_keyed_by_content(classifier, tmp_path):
    samples = bars("bars-h", 200, seed=11)
    ref_a, ref_b = bars("bars-h", 300, seed=12), bars("bars-v", 300, seed=12)
    cache = tmp_path / "fidelity"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fid_a = generation_metrics(samples, ref_a, domain=classifier, reference_key="k")[
            "fid_domain_200"
        ]
        files_a = set(cache.iterdir())
        assert len(files_a) == 2 and all(f.name.startswith("ref-k-n300-") for f in files_a)
        again = generation_metrics(samples, ref_a, domain=classifier, reference_key="k")[
            "fid_domain_200"
        ]
        assert again == fid_a and set(cache.iterdir()) == files_a  # cache hit, same number
        # same key, different reference: must recompute, not reuse ref_a's statistics
        fid_b = generation_metrics(samples, ref_b, domain=classifier, reference_key="k")[
            "fid_domain_200"
        ]
        uncached_b = generation_metrics(samples, ref_b, domain=classifier, cache=False)[
            "fid_domain_200"
        ]
    assert fid_b == pytest.approx(uncached_b, rel=1e-9) and fid_b > 10 * fid_a
    assert len(set(cache.iterdir())) == 4


def test_the_protocol_names_the_reference_by_content(classifier):
    """Regression (gate case fid-vs-train): FID against another reference of the same size and
    key must not compare with FID against the clean inliers."""
    samples = bars("bars-h", 200, seed=11)
    ref_a, ref_b = bars("bars-h", 300, seed=12), bars("bars-h", 300, seed=13)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _, first = generation_metrics_with_protocol(samples, ref_a, domain=classifier,
                                                    reference_key="k", cache=False)
        _, again = generation_metrics_with_protocol(samples, ref_a.clone(), domain=classifier,
                                                    reference_key="k", cache=False)
        _, other = generation_metrics_with_protocol(samples, ref_b, domain=classifier,
                                                    reference_key="k", cache=False)
    assert first == again
    assert {k for k in first if first[k] != other[k]} == {"reference_digest"}


def test_to_uint8_is_exact_for_uint8_images_and_rejects_nan():
    u8 = torch.randint(0, 256, (3, 1, 5, 5), dtype=torch.uint8)
    assert torch.equal(to_uint8(u8.float() / 255), u8)
    assert to_uint8(torch.tensor([-0.5, 0.5, 1.5]).reshape(1, 1, 1, 3)).flatten().tolist() == [
        0,
        128,
        255,
    ]
    with pytest.raises(ValueError, match="samples hold 1 NaN/infinite pixel value"):
        to_uint8(torch.tensor([0.1, float("nan")]).reshape(1, 1, 1, 2), "samples")
    with pytest.raises(ValueError, match=r"must be N x 1\|3 x H x W"):
        to_uint8(torch.rand(2, 28, 28))
    assert UInt8Images(u8)[0].shape == (3, 5, 5)
