"""Nearest-codeword search for vector quantizers: one interface, several backends.

>>> from rvqvae.quantize import nearest
>>> indices, distances = nearest(x, codebook)                  # plain squared Euclidean
>>> indices, distances = nearest(x, codebook, weights=1 / (var + 1e-6))   # weighted
>>> indices, distances = nearest_directional(x, codebook, covariance)    # RVQ-VAE option

Backends live in :data:`BACKENDS` (``torch-cdist``, ``chunked``, ``compiled``, ``triton``,
``auto``); see :mod:`rvqvae.quantize.backends`. Ground truth for tests is in
:mod:`rvqvae.quantize.reference`.
"""

from rvqvae.quantize.api import nearest, nearest_directional, pairwise_distances
from rvqvae.quantize.backends import (
    BACKENDS,
    Backend,
    auto_backend_name,
    available_backends,
    resolve_backend,
)

__all__ = [
    "BACKENDS",
    "Backend",
    "auto_backend_name",
    "available_backends",
    "nearest",
    "nearest_directional",
    "pairwise_distances",
    "resolve_backend",
]
