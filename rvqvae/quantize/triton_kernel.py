"""The ``triton`` backend: a fused distance + running-argmin kernel that streams codeword tiles.

Each program takes ``BLOCK_N`` rows of ``x`` and walks the codebook ``BLOCK_K`` codewords at a
time, computing ``|e|_w^2 - 2 (x - m) . (w * (e - m))`` with ``tl.dot`` (D in ``BLOCK_D``
slices, masked, so any N, K and D work; D < 16 is zero-padded to the 16 ``tl.dot`` needs) and
keeping only a running minimum and its index: no N x K tensor exists. Centring on the
codebook mean ``m`` and the weights are folded into the prepared codebook, exactly as in
:mod:`rvqvae.quantize.chunked`; the returned distances are recomputed directly from the
difference to the chosen codeword. float32 dots use IEEE precision (``tf32`` would flip
argmins far beyond near-ties).

Configs: :data:`CONFIGS` is the table of launch configurations (tile sizes, warps, pipeline
stages) and :func:`pick_config` the rule that picks one from the problem's K, D and dtype:
small codebooks (K <= 64) use 32-codeword tiles so fewer masked columns are computed; large
float32 codebooks (K >= 1024) use 128 x 128 tiles and 8 warps (more reuse of each loaded
tile); float64, whose dots run at a fraction of the float32 rate, uses 32 x 32 tiles to keep
registers in bounds; everything else the 64 x 64 default. D is walked in slices of
``min(block_d, next power of two >= D)`` (at least 16). The rule is fixed and documented, not
timed, so a run is reproducible; ``nearest_triton(..., config=name)`` runs any entry, and the
interpreter tests run every entry at the edges of its tiles.

Availability: CUDA tensors when Triton is installed and a GPU is present; CPU tensors only when
``TRITON_INTERPRET=1`` was set before Triton (and this backend) were first imported, which runs
the kernel in Triton's slow numpy interpreter — a correctness check, not a fast path.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import torch

from rvqvae.quantize.chunked import CodebookPlan, compute_dtype, exact_distances


@dataclass(frozen=True)
class TritonConfig:
    """One launch configuration: rows and codewords per tile, the largest D slice, warps and
    software-pipeline stages."""

    block_n: int
    block_k: int
    block_d: int
    num_warps: int
    num_stages: int


CONFIGS = {
    "small-k": TritonConfig(block_n=64, block_k=32, block_d=64, num_warps=4, num_stages=2),
    "default": TritonConfig(block_n=64, block_k=64, block_d=64, num_warps=4, num_stages=2),
    "large-k": TritonConfig(block_n=128, block_k=128, block_d=32, num_warps=8, num_stages=3),
    "float64": TritonConfig(block_n=32, block_k=32, block_d=32, num_warps=4, num_stages=2),
}


def pick_config(k: int, d: int, dtype: torch.dtype) -> str:
    """The :data:`CONFIGS` entry for a search of K codewords of dimension D (module doc)."""
    if compute_dtype(dtype) == torch.float64:
        return "float64"
    if k <= 64:
        return "small-k"
    if k >= 1024:
        return "large-k"
    return "default"

_jit = None
_import_failed = False


def available(device: torch.device) -> bool:
    """Triton importable and either a usable CUDA device or the CPU interpreter active."""
    jit = _kernels()
    if jit is None:
        return False
    if device.type == "cuda":
        return torch.cuda.is_available() and not jit.INTERPRETED
    return device.type == "cpu" and jit.INTERPRETED


def nearest_triton(
    x: torch.Tensor, codebook: torch.Tensor, weights: torch.Tensor | None = None,
    *, config: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as :func:`~rvqvae.quantize.chunked.nearest_chunked`, one kernel launch
    with the :data:`CONFIGS` entry ``config`` (default: :func:`pick_config`'s choice)."""
    jit = _kernels()
    dtype = compute_dtype(x.dtype)
    x = x.to(dtype).contiguous()
    codebook = codebook.to(dtype).contiguous()
    weights = None if weights is None else weights.to(dtype)
    plan = CodebookPlan.build(codebook, weights)
    scaled = plan.scaled_t.t().contiguous()
    n, dim = x.shape
    tiles = CONFIGS[config or pick_config(codebook.shape[0], dim, dtype)]
    indices = torch.empty(n, dtype=torch.int64, device=x.device)
    block_d = min(tiles.block_d, max(16, _next_power_of_two(dim)))
    grid = (triton_cdiv(n, tiles.block_n),)
    jit.nearest_kernel[grid](
        x, plan.centre.contiguous(), scaled, plan.sqnorm.contiguous(), indices,
        n, codebook.shape[0], dim, x.stride(0), scaled.stride(0),
        BLOCK_N=tiles.block_n, BLOCK_K=tiles.block_k, BLOCK_D=block_d, PRECISION="ieee",
        num_warps=tiles.num_warps, num_stages=tiles.num_stages,
    )
    return indices, exact_distances(x, codebook, indices, weights)


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _next_power_of_two(value: int) -> int:
    return 1 << max(0, (value - 1).bit_length())


def _kernels():
    """The lazily imported kernel module, or None when Triton cannot be imported."""
    global _jit, _import_failed
    if _jit is None and not _import_failed:
        try:
            _jit = importlib.import_module("rvqvae.quantize._triton_jit")
        except Exception:  # noqa: BLE001 - ImportError, or a broken Triton install
            _import_failed = True
    return _jit
