"""The ``triton`` backend: a fused distance + running-argmin kernel that streams codeword tiles.

Each program takes ``BLOCK_N`` rows of ``x`` and walks the codebook ``BLOCK_K`` codewords at a
time, computing ``|e|_w^2 - 2 (x - m) . (w * (e - m))`` with ``tl.dot`` (D in ``BLOCK_D``
slices, masked, so any N, K and D work; D < 16 is zero-padded to the 16 ``tl.dot`` needs) and
keeping only a running minimum and its index: no N x K tensor exists. Centring on the
codebook mean ``m`` and the weights are folded into the prepared codebook, exactly as in
:mod:`rvqvae.quantize.chunked`; the returned distances are recomputed directly from the
difference to the chosen codeword. float32 dots use IEEE precision (``tf32`` would flip
argmins far beyond near-ties).

Availability: CUDA tensors when Triton is installed and a GPU is present; CPU tensors only when
``TRITON_INTERPRET=1`` was set before Triton (and this backend) were first imported, which runs
the kernel in Triton's slow numpy interpreter — a correctness check, not a fast path.
"""

from __future__ import annotations

import importlib

import torch

from rvqvae.quantize.chunked import CodebookPlan, compute_dtype, exact_distances

BLOCK_N = 64
BLOCK_K = 64
MAX_BLOCK_D = 64

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
    x: torch.Tensor, codebook: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as :func:`~rvqvae.quantize.chunked.nearest_chunked`, one kernel launch."""
    jit = _kernels()
    dtype = compute_dtype(x.dtype)
    x = x.to(dtype).contiguous()
    codebook = codebook.to(dtype).contiguous()
    weights = None if weights is None else weights.to(dtype)
    plan = CodebookPlan.build(codebook, weights)
    scaled = plan.scaled_t.t().contiguous()
    n, dim = x.shape
    indices = torch.empty(n, dtype=torch.int64, device=x.device)
    block_d = min(MAX_BLOCK_D, max(16, _next_power_of_two(dim)))
    grid = (triton_cdiv(n, BLOCK_N),)
    jit.nearest_kernel[grid](
        x, plan.centre.contiguous(), scaled, plan.sqnorm.contiguous(), indices,
        n, codebook.shape[0], dim, x.stride(0), scaled.stride(0),
        BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, BLOCK_D=block_d, PRECISION="ieee",
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
