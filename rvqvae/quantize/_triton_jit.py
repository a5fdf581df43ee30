"""The Triton kernel behind the ``triton`` backend (imported lazily: it imports triton).

Whether it runs compiled (CUDA) or interpreted on CPU tensors is fixed when this module is
first imported: ``@triton.jit`` reads ``TRITON_INTERPRET`` at decoration time.
"""

import triton
import triton.language as tl

INTERPRETED = bool(triton.knobs.runtime.interpret)


@triton.jit
def nearest_kernel(
    x_ptr, centre_ptr, scaled_ptr, sqnorm_ptr, out_ptr,
    N, K, D, stride_x, stride_e,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """One program: BLOCK_N rows; stream codeword tiles keeping a running (min, argmin).

    score = |e|_w^2 - 2 (x - m) . (w * (e - m)); masked codewords score +inf. Within a tile
    ``tl.argmin`` breaks ties to the left; across tiles only a strictly smaller score replaces
    the running best, so the lowest index wins every tie.
    """
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < N
    best = tl.full((BLOCK_N,), float("inf"), dtype=sqnorm_ptr.dtype.element_ty)
    best_index = tl.zeros((BLOCK_N,), dtype=tl.int64)
    for k0 in range(0, K, BLOCK_K):
        cols = k0 + tl.arange(0, BLOCK_K)
        col_ok = cols < K
        dots = tl.zeros((BLOCK_N, BLOCK_K), dtype=sqnorm_ptr.dtype.element_ty)
        for d0 in range(0, D, BLOCK_D):
            dims = d0 + tl.arange(0, BLOCK_D)
            dim_ok = dims < D
            centre = tl.load(centre_ptr + dims, mask=dim_ok, other=0.0)
            x = tl.load(
                x_ptr + rows[:, None] * stride_x + dims[None, :],
                mask=row_ok[:, None] & dim_ok[None, :], other=0.0,
            )
            x = tl.where(dim_ok[None, :], x - centre[None, :], 0.0)
            e = tl.load(
                scaled_ptr + cols[:, None] * stride_e + dims[None, :],
                mask=col_ok[:, None] & dim_ok[None, :], other=0.0,
            )
            dots = tl.dot(x, tl.trans(e), dots, input_precision=PRECISION)
        sqnorm = tl.load(sqnorm_ptr + cols, mask=col_ok, other=float("inf"))
        scores = sqnorm[None, :] - 2.0 * dots
        tile_best = tl.min(scores, axis=1)
        tile_index = tl.argmin(scores, axis=1).to(tl.int64) + k0
        better = tile_best < best
        best = tl.where(better, tile_best, best)
        best_index = tl.where(better, tile_index, best_index)
    tl.store(out_ptr + rows, best_index, mask=row_ok)
