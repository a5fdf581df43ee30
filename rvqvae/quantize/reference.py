"""Float64 brute-force nearest-codeword search: the ground truth every backend is tested against.

These functions compute each distance directly from the difference ``x_i - e_k`` in float64
(no expanded ``|x|^2 - 2 x.e + |e|^2`` form, so no cancellation), in row blocks so memory stays
bounded. They are slow (O(N K D) memory traffic) and meant for tests and benchmark checks only.
Ties are broken towards the lowest index (``torch.argmin`` returns the first minimum).
"""

from __future__ import annotations

import torch

_BLOCK_ELEMENTS = 1 << 22  # rows are processed so that one block holds ~4M float64 differences


def reference_distances(
    x: torch.Tensor, codebook: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """All (weighted) squared distances ``sum_j w_j (x_ij - e_kj)^2`` as an N x K float64 tensor."""
    x64, e64 = x.double(), codebook.double()
    w64 = None if weights is None else weights.double()
    blocks = []
    for rows in _row_blocks(x64.shape[0], codebook.shape[0] * max(1, codebook.shape[1])):
        diff = x64[rows, None, :] - e64[None, :, :]
        squared = diff.square()
        blocks.append((squared * w64).sum(-1) if w64 is not None else squared.sum(-1))
    if not blocks:
        return x64.new_zeros((0, codebook.shape[0]))
    return torch.cat(blocks)


def reference_directional_distances(
    x: torch.Tensor, codebook: torch.Tensor, covariance: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """All directional distances ``|r|^2 / (u'Su + eps)``, ``u = r/|r|``, ``r = x - e``.

    The distance is 0 where ``r = 0``.
    """
    x64, e64, cov64 = x.double(), codebook.double(), covariance.double()
    blocks = []
    for rows in _row_blocks(x64.shape[0], codebook.shape[0] * max(1, codebook.shape[1])):
        r = x64[rows, None, :] - e64[None, :, :]
        norm2 = r.square().sum(-1)
        quad = torch.einsum("nkd,de,nke->nk", r, cov64, r)
        safe = torch.where(norm2 > 0, norm2, torch.ones_like(norm2))
        direction_var = quad / safe
        distances = norm2 / (direction_var + eps)
        blocks.append(torch.where(norm2 > 0, distances, torch.zeros_like(norm2)))
    if not blocks:
        return x64.new_zeros((0, codebook.shape[0]))
    return torch.cat(blocks)


def reference_nearest(
    x: torch.Tensor, codebook: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 brute-force ``(indices int64, distances float64)``; lowest index wins ties."""
    distances = reference_distances(x, codebook, weights)
    return _argmin(distances)


def _argmin(distances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if distances.shape[0] == 0:
        return distances.new_zeros(0, dtype=torch.int64), distances.new_zeros(0)
    indices = distances.argmin(dim=1)  # argmin promises the first minimum; min(dim) does not
    return indices, distances.gather(1, indices[:, None]).squeeze(1)


def _row_blocks(n: int, elements_per_row: int):
    step = max(1, _BLOCK_ELEMENTS // max(1, elements_per_row))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))
