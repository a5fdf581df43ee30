"""The ``compiled`` backend: ``torch.compile`` of the chunked block step.

The step ``argmin(|e|_w^2 - 2 (x - m) . (w * e))`` for one block of rows is compiled lazily on
first use; TorchDynamo caches the compiled code per shape and dtype (a second block shape, the
ragged last block, switches it to one dynamic-shape graph). Inductor leaves the GEMM to the
BLAS library and fuses the centring, bias and argmin around it. If compilation fails (no C
compiler, an unsupported torch), the backend warns once and runs the eager chunked code, so a
call never fails because of the compiler.
"""

from __future__ import annotations

import warnings

import torch

from rvqvae.quantize.chunked import (
    CodebookPlan,
    compute_dtype,
    default_chunk_rows,
    exact_distances,
    nearest_chunked,
)
from rvqvae.quantize.toolchain import cxx_compiler

_compiled_step = None
_compile_failed = False


def available(device: torch.device) -> bool:
    """True where ``torch.compile`` can build kernels: CUDA, or CPU with a C++ compiler."""
    if _compile_failed or not hasattr(torch, "compile"):
        return False
    if device.type == "cuda":
        return torch.cuda.is_available()
    return device.type == "cpu" and cxx_compiler() is not None


def nearest_compiled(
    x: torch.Tensor,
    codebook: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    chunk_rows: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract and results as :func:`~rvqvae.quantize.chunked.nearest_chunked`."""
    global _compile_failed
    step = _step()
    if step is None:
        return nearest_chunked(x, codebook, weights, chunk_rows=chunk_rows)
    dtype = compute_dtype(x.dtype)
    x = x.to(dtype)
    codebook = codebook.to(dtype)
    weights = None if weights is None else weights.to(dtype)
    plan = CodebookPlan.build(codebook, weights)
    n = x.shape[0]
    rows = min(n, chunk_rows or default_chunk_rows(codebook.shape[0], dtype))
    indices = torch.empty(n, dtype=torch.int64, device=x.device)
    try:
        for start in range(0, n, rows):
            indices[start:start + rows] = step(
                x[start:start + rows], plan.centre, plan.scaled_t, plan.sqnorm
            )
    except Exception as error:  # noqa: BLE001 - any compiler failure means: fall back
        _compile_failed = True
        warnings.warn(
            f"torch.compile failed ({type(error).__name__}: {error}); using the chunked backend",
            RuntimeWarning, stacklevel=2,
        )
        return nearest_chunked(x, codebook, weights, chunk_rows=chunk_rows)
    return indices, exact_distances(x, codebook, indices, weights)


def _block_argmin(
    block: torch.Tensor, centre: torch.Tensor, scaled_t: torch.Tensor, sqnorm: torch.Tensor
) -> torch.Tensor:
    scores = torch.addmm(sqnorm, block - centre, scaled_t, beta=1, alpha=-2)
    return scores.argmin(dim=1)


def _step():
    global _compiled_step
    if _compile_failed:
        return None
    if _compiled_step is None:
        _compiled_step = torch.compile(_block_argmin, fullgraph=True)
    return _compiled_step
