"""FID and KID of generated samples against a reference set, computed by torch-fidelity.

>>> values = generation_metrics(samples, clean_test, extractor="domain", domain=classifier,
...                             reference_key="mnist-test-all")
>>> values  # {"fid_domain_2k": ..., "kid_domain_2k": ..., "kid_domain_2k_std": ...}

Images are float in [0, 1] (or uint8), N x 1|3 x H x W; floats become uint8 as
``round(clamp(x, 0, 1) * 255)`` (exact for images that came from uint8) and are served to
torch-fidelity as uint8 3 x H x W tensors (grayscale repeated), its input convention; each
extractor resizes as it needs. ``n`` in the metric names is the number of generated samples.

Reference statistics (features and FID mean/covariance of the reference) are cached by
torch-fidelity in ``cache_dir("fidelity")`` under ``input2_cache_name``. torch-fidelity keys
its cache files by that name and the extractor name only, so the name given here carries
everything else that changes them: the reference's description (``reference_key``), its size,
and a sha256 of the extractor's weights hash, feature layer and the reference's uint8 pixels.
A different reference therefore never reuses stale statistics.

Small n: a warning when n (or the reference size) is below the feature dimension (the
covariance is singular and FID is strongly biased upwards), and the KID subset size becomes
``min(kid_subset_size or 1000, n, n_reference)`` instead of torch-fidelity's error. When that
subset size is n, every subset is the whole sample and ``kid_*_std`` is NaN (see
:func:`kid_std_undefined`; the evaluation records it as undefined with the reason).
"""

from __future__ import annotations

import glob
import hashlib
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from bench.cache import cache_dir
from bench.metrics.catalog import metric_name
from bench.metrics.domain import DomainClassifier
from bench.metrics.extractors import FeatureExtractorSpec, resolve_extractor

KID_SUBSET_SIZE = 1000  # torch-fidelity's default
KID_SUBSETS = 100


def generation_metrics(samples: torch.Tensor, reference: torch.Tensor, **options: Any
                       ) -> dict[str, float]:
    """``fid_<label>_<n>``, ``kid_<label>_<n>``, ``kid_<label>_<n>_std``: samples vs reference.

    Takes the keyword options of :func:`generation_metrics_with_protocol` and returns its
    values without the protocol.
    """
    return generation_metrics_with_protocol(samples, reference, **options)[0]


def generation_metric_names(label: str, n: int) -> dict[str, str]:
    """The names of FID, KID and KID's spread for extractor ``label`` and ``n`` samples, from
    their catalog entries (``fid_<label>_<n>``, ``kid_<label>_<n>``, ``kid_<label>_<n>_std``)."""
    return {entry: metric_name(entry, extractor=label, n=n) for entry in ("fid", "kid", "kid_std")}


def generation_metrics_with_protocol(
    samples: torch.Tensor,
    reference: torch.Tensor,
    *,
    extractor: str | FeatureExtractorSpec | DomainClassifier = "domain",
    domain: DomainClassifier | None = None,
    reference_key: str | None = None,
    kid_subset_size: int | None = None,
    kid_subsets: int = KID_SUBSETS,
    batch_size: int = 256,
    cache: bool = True,
    device: str = "cpu",
    seed: int = 2020,
) -> tuple[dict[str, float], dict[str, Any]]:
    """FID/KID of ``samples`` against ``reference``, and the protocol that makes them comparable.

    ``extractor`` is a name from ``EXTRACTORS`` (``domain`` needs ``domain=``), a spec or a
    domain classifier. ``seed`` drives KID's subset choice. See the module docstring for the
    uint8 conversion, reference caching and small-n behaviour.
    """
    spec = resolve_extractor(extractor, domain=domain)
    samples_u8, reference_u8 = _checked_inputs(samples, reference, spec)
    n, n_ref = len(samples_u8), len(reference_u8)
    subset = kid_subset_adapted(n, n_ref, kid_subset_size)
    result = _fidelity(samples_u8, reference_u8, spec, reference_key=reference_key,
                       subset=subset, kid_subsets=kid_subsets, batch_size=batch_size,
                       cache=cache, device=device, seed=seed)
    protocol = {
        "extractor": spec.label,
        "extractor_name": spec.fidelity_name,
        "extractor_weights": spec.weights_hash,
        "extractor_source": spec.source,
        "feature_layer": spec.feature_layer,
        "n_samples": n,
        "n_reference": n_ref,
        "reference": reference_key,
        "reference_digest": content_digest(reference_u8),  # what was measured against
        "kid_subset_size": subset,
        "kid_subsets": kid_subsets,
    }
    return _named_values(result, spec.label, n, subset), protocol


def _checked_inputs(samples: torch.Tensor, reference: torch.Tensor, spec: FeatureExtractorSpec
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Both image sets as uint8; at least 2 of each (else ``ValueError``), a warning below the
    feature dimension (FID is then biased upwards)."""
    samples_u8, reference_u8 = to_uint8(samples, "samples"), to_uint8(reference, "reference")
    n, n_ref = len(samples_u8), len(reference_u8)
    if n < 2 or n_ref < 2:
        raise ValueError(
            f"FID/KID need at least 2 samples and 2 reference images, got {n} and {n_ref}"
        )
    if min(n, n_ref) < spec.feature_dim:
        warnings.warn(
            f"FID with {n} samples / {n_ref} reference images below the {spec.label} feature "
            f"dimension {spec.feature_dim} is biased upwards (singular covariance); "
            "use more samples",
            stacklevel=3,
        )
    return samples_u8, reference_u8


def _fidelity(samples_u8: torch.Tensor, reference_u8: torch.Tensor, spec: FeatureExtractorSpec,
              *, reference_key: str | None, subset: int, kid_subsets: int, batch_size: int,
              cache: bool, device: str, seed: int) -> dict[str, float]:
    """torch-fidelity's FID and KID, the reference's statistics cached under a name that
    carries its content digest (a cache file that does not match is refused first)."""
    from torch_fidelity import calculate_metrics

    cache_name = reference_cache_name(reference_u8, spec, reference_key) if cache else None
    if cache_name is not None:
        vet_reference_cache(cache_dir("fidelity"), cache_name)
    layer = {"feature_layer_fid": spec.feature_layer, "feature_layer_kid": spec.feature_layer}
    return calculate_metrics(
        input1=UInt8Images(samples_u8),
        input2=UInt8Images(reference_u8),
        fid=True,
        kid=True,
        feature_extractor=spec.fidelity_name,
        **{k: v for k, v in layer.items() if v is not None},
        kid_subset_size=subset,
        kid_subsets=kid_subsets,
        batch_size=batch_size,
        cache=cache,
        cache_root=str(cache_dir("fidelity")),
        input2_cache_name=cache_name,
        cuda=torch.device(device).type == "cuda",
        save_cpu_ram=True,
        verbose=False,
        rng_seed=seed,
    )


def _named_values(result: dict[str, float], label: str, n: int, subset: int
                  ) -> dict[str, float]:
    """torch-fidelity's numbers under the catalog's names; KID's spread NaN where it measures
    nothing (:func:`kid_std_undefined`)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD

    names = generation_metric_names(label, n)
    values = {
        names["fid"]: float(result[KEY_METRIC_FID]),
        names["kid"]: float(result[KEY_METRIC_KID_MEAN]),
        names["kid_std"]: float(result[KEY_METRIC_KID_STD]),
    }
    if kid_std_undefined(n, subset):  # every subset of the samples is the whole sample
        values[names["kid_std"]] = float("nan")
    return values


def kid_std_undefined(n: int, subset: int) -> str:
    """Why ``kid_*_std`` has no meaning for ``n`` samples and KID subsets of ``subset``, or "".

    When the subset size reaches the sample count, every subset holds every sample: the
    spread over subsets is ~0 by construction (torch-fidelity reports ~1e-7), which would
    read as certainty. The std is then recorded as undefined with this reason.
    """
    if subset >= n:
        return (f"every KID subset holds all {n} samples (subset size {subset}): the spread "
                f"over subsets measures nothing; use more samples than the subset size")
    return ""


def kid_subset_adapted(n: int, n_ref: int, requested: int | None = None) -> int:
    """``min(requested or 1000, n, n_ref)``, with a warning when it drops below the request."""
    wanted = requested or KID_SUBSET_SIZE
    subset = min(wanted, n, n_ref)
    if subset < wanted:
        warnings.warn(
            f"KID subset size reduced from {wanted} to {subset} to fit {n} samples and "
            f"{n_ref} reference images; KID is noisier",
            stacklevel=3,
        )
    return subset


def vet_reference_cache(folder: Path, cache_name: str) -> list[Path]:
    """Check the cached reference statistics of ``cache_name`` before torch-fidelity reads them.

    torch-fidelity loads its cache with ``weights_only=False``; here every file is first loaded
    with ``weights_only=True`` (tensors, and the numpy arrays of its FID statistics). A file
    that fails (corrupt, truncated, or holding anything else) is deleted with a warning naming
    it, so torch-fidelity recomputes it. Returns the deleted paths.
    """
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    allowed = [core.multiarray._reconstruct, np.ndarray, np.dtype,
               *(type(np.dtype(t)) for t in ("float32", "float64"))]
    removed = []
    for path in sorted(folder.glob(f"{glob.escape(cache_name)}-*.pt")):
        try:
            with torch.serialization.safe_globals(allowed):
                torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # unpickling errors share no base class
            warnings.warn(f"reference statistics cache {path} is unreadable "
                          f"({type(error).__name__}); deleting it to recompute", stacklevel=2)
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def content_digest(images_u8: torch.Tensor) -> str:
    """sha256 (16 hex digits) of a uint8 image tensor's shape and pixels: the same images give
    the same digest on every machine, and any other reference set (another split, the
    contaminated training set) a different one."""
    digest = hashlib.sha256(str(tuple(images_u8.shape)).encode())
    digest.update(images_u8.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def reference_cache_name(
    reference_u8: torch.Tensor, spec: FeatureExtractorSpec, reference_key: str | None
) -> str:
    """torch-fidelity cache name of a reference: its key, size and a content+extractor digest."""
    digest = hashlib.sha256()
    digest.update(f"{spec.fidelity_name}|{spec.weights_hash}|{spec.feature_layer}|".encode())
    digest.update(str(tuple(reference_u8.shape)).encode())
    digest.update(reference_u8.contiguous().numpy().tobytes())
    slug = re.sub(r"[^a-z0-9._-]+", "-", (reference_key or "reference").lower()).strip("-")
    return f"ref-{slug[:80]}-n{len(reference_u8)}-{digest.hexdigest()[:16]}"


def to_uint8(images: torch.Tensor, what: str = "images") -> torch.Tensor:
    """uint8 N x C x H x W on the CPU: floats in [0, 1] as round(clamp(x, 0, 1) * 255)."""
    images = torch.as_tensor(images).detach().cpu()
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"{what} must be N x 1|3 x H x W, got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise ValueError(f"{what} must be float in [0, 1] or uint8, got {images.dtype}")
    bad = int((~torch.isfinite(images)).sum())
    if bad:
        raise ValueError(f"{what} hold {bad} NaN/infinite pixel value(s)")
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


class UInt8Images(Dataset):
    """uint8 images served one by one as 3 x H x W tensors (torch-fidelity's input convention)."""

    def __init__(self, images_u8: torch.Tensor):
        self.images = images_u8

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.images[index]
        return image.expand(3, -1, -1).contiguous() if image.shape[0] == 1 else image
