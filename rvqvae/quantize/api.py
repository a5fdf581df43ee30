"""The public search functions: validate once, pick a backend, return ``(indices, distances)``."""

from __future__ import annotations

import math

import torch

from rvqvae.errors import NonFiniteError, UserError
from rvqvae.quantize.backends import resolve_backend
from rvqvae.quantize.chunked import CodebookPlan, compute_dtype


def nearest(
    x: torch.Tensor,
    codebook: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index and squared distance of the nearest codeword for every row of ``x``.

    Args:
        x: (N, D) float tensor. N = 0 gives empty results.
        codebook: (K, D) float tensor on x's device, K >= 1 (it is cast to x's dtype).
        weights: None for the plain squared Euclidean distance, or a (D,) non-negative tensor
            for the weighted one ``sum_j w_j (x_j - e_j)^2`` (RVQ-VAE uses
            ``w = 1 / (var_j + eps)``). Zero weights are allowed.
        backend: a name in :data:`~rvqvae.quantize.BACKENDS` or ``"auto"`` (see there).

    Returns:
        ``indices`` int64 (N,) and ``distances`` (N,) in x's dtype: the (weighted) squared
        distance from each row to its chosen codeword, computed directly from the difference.

    Ties: the lowest index wins. With the GEMM-form backends (``chunked``, ``compiled``,
    ``triton``) a tie means *equal computed scores*; codewords whose true distances differ by
    less than the rounding error of the expanded form (about ``eps_dtype * (|x-m|^2 + |e-m|^2)``,
    m = codebook mean) may be chosen in either order, and the returned distance is then the exact
    distance of the chosen near-tie, within that tolerance of the true minimum.

    Raises:
        ValueError: K = 0, D = 0, shapes that do not fit together, NaN/infinite values in
            ``x``, ``codebook`` or ``weights``, values so far apart that squared distances
            overflow, or a tensor that requires grad (checked here, before any backend runs,
            so every backend rejects the same inputs).
        UserError: an unknown backend, or one not available on x's device.
    """
    _check_no_grad(x=x, codebook=codebook, weights=weights)
    span = _check_pair(x, codebook)
    if weights is not None:
        if weights.shape != (x.shape[1],):
            raise ValueError(
                f"weights must have shape ({x.shape[1]},), got {tuple(weights.shape)}"
            )
        _check_finite(weights, "weights")
        if bool((weights < 0).any()):
            raise ValueError("weights must be non-negative")
        weights = weights.to(device=x.device)
    _check_fits(span, x, weights)
    name, chosen = resolve_backend(backend, x.device)
    if x.shape[0] == 0:
        return _empty(x)
    indices, distances = chosen.search(x, codebook.to(device=x.device, dtype=x.dtype), weights)
    return indices, distances.to(x.dtype)


def nearest_directional(
    x: torch.Tensor,
    codebook: torch.Tensor,
    covariance: torch.Tensor,
    *,
    eps: float = 1e-6,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest codeword under the "variance along the residual direction" distance.

    ``d(x, e) = |r|^2 / (u' S u + eps)`` with ``r = x - e``, ``u = r / |r|`` and ``S`` the (D, D)
    symmetric positive semi-definite codebook covariance; ``d = 0`` where ``x = e``. Backends
    with a directional form: ``chunked`` (the ``auto`` choice, two GEMMs fused into one) and
    ``torch-cdist`` (direct broadcasting; small problems). Returns ``(indices int64 (N,),
    distances (N,) in x's dtype)``, the distance recomputed directly for the chosen codeword;
    lowest index wins ties. Raises ``ValueError`` as :func:`nearest` does, and for a
    non-finite ``covariance`` or ``eps``.
    """
    _check_no_grad(x=x, codebook=codebook, covariance=covariance)
    _check_fits(_check_pair(x, codebook), x, None)
    dim = x.shape[1]
    if covariance.shape != (dim, dim):
        raise ValueError(
            f"covariance must have shape ({dim}, {dim}), got {tuple(covariance.shape)}"
        )
    _check_finite(covariance, "covariance")
    if not eps >= 0 or eps == float("inf"):
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")
    name, chosen = resolve_backend(backend, x.device, directional=True)
    if chosen.directional is None:
        raise UserError(
            f"quantizer backend {name!r} has no directional distance; "
            "use 'chunked' or 'torch-cdist'"
        )
    if x.shape[0] == 0:
        return _empty(x)
    codebook = codebook.to(device=x.device, dtype=x.dtype)
    covariance = covariance.to(device=x.device, dtype=x.dtype)
    indices, distances = chosen.directional(x, codebook, covariance, eps)
    return indices, distances.to(x.dtype)


def pairwise_distances(
    x: torch.Tensor, codebook: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """All (weighted) squared distances as an (N, K) tensor in x's dtype, clamped at >= 0.

    Computed with the centred GEMM form (see :mod:`rvqvae.quantize.chunked`): accurate for
    vectors far from the origin, but it materialises N x K — for small problems and soft
    assignments. Use :func:`nearest` when only the minimum is needed.
    """
    _check_pair(x, codebook)
    dtype = compute_dtype(x.dtype)
    xs = x.to(dtype)
    e = codebook.to(device=x.device, dtype=dtype)
    w = None if weights is None else weights.to(device=x.device, dtype=dtype)
    plan = CodebookPlan.build(e, w)
    centred = xs - plan.centre
    x_norm = (centred.square() if w is None else centred.square() * w).sum(1, keepdim=True)
    scores = torch.addmm(plan.sqnorm, centred, plan.scaled_t, beta=1, alpha=-2)
    return (scores + x_norm).clamp_(min=0).to(x.dtype)


def _check_pair(x: torch.Tensor, codebook: torch.Tensor) -> float:
    """Shapes and dtype checked, every value finite; returns the span of all the values,
    ``max - min`` over x and codebook together (for :func:`_check_fits`)."""
    if x.dim() != 2 or codebook.dim() != 2:
        raise ValueError(
            f"x must be (N, D) and codebook (K, D); "
            f"got {tuple(x.shape)} and {tuple(codebook.shape)}"
        )
    if codebook.shape[0] == 0:
        raise ValueError("codebook is empty (K = 0): there is no nearest codeword")
    if x.shape[1] != codebook.shape[1]:
        raise ValueError(f"x has D={x.shape[1]} but codebook has D={codebook.shape[1]}")
    if x.shape[1] == 0:
        raise ValueError("x and codebook have D = 0 coordinates: there is no distance to compare")
    if not x.is_floating_point():
        raise ValueError(f"x must be a float tensor, got {x.dtype}")
    ranges = [_finite_range(x, "x"), _finite_range(codebook, "codebook")]
    present = [r for r in ranges if r is not None]
    return max(high for _, high in present) - min(low for low, _ in present)


def _finite_range(tensor: torch.Tensor, what: str) -> tuple[float, float] | None:
    """``(min, max)`` of ``tensor`` (None when empty) after refusing NaN and infinities:
    one reduction, which a NaN or an infinity anywhere turns non-finite."""
    if not tensor.numel():
        return None
    low, high = (float(v) for v in torch.aminmax(tensor.detach()))
    if not (math.isfinite(low) and math.isfinite(high)):
        _check_finite(tensor, what)  # counts them, names them
    return low, high


def _check_fits(span: float, x: torch.Tensor, weights: torch.Tensor | None) -> None:
    """Refuse inputs whose squared distances could overflow the type the backends compute in
    (float32, or float64 for float64 inputs): every distance would be infinite and the GEMM
    form backends (``chunked``, ``compiled``) would pick other codewords than the direct ones.
    The bound: ``D * max(1, max(w)) * span^2``, with 8x room for the expanded form's terms
    (a coordinate's squared difference can overflow before a zero weight drops it)."""
    largest = torch.finfo(compute_dtype(x.dtype)).max
    weight = 1.0 if weights is None or not weights.numel() else float(weights.max())
    # Python floats: inf, never an error, on overflow
    bound = x.shape[1] * max(weight, 1.0) * span * span
    if bound > largest / 8:
        raise ValueError(
            f"x and codebook values span {span:.3g} (D = {x.shape[1]}"
            f"{f', largest weight {weight:.3g}' if weights is not None else ''}): squared "
            f"distances up to {bound:.3g} overflow {compute_dtype(x.dtype)} (largest "
            f"{largest:.3g}); rescale the inputs"
            + ("" if x.dtype == torch.float64 else " or pass float64 tensors")
        )


def _check_no_grad(**tensors: torch.Tensor | None) -> None:
    """Refuse tensors that require grad: a nearest-codeword search is a discrete choice with no
    gradient, and the backends differed (two raised autograd errors, one returned distances
    carrying a gradient, the others did not)."""
    for name, tensor in tensors.items():
        if tensor is not None and tensor.requires_grad:
            raise ValueError(
                f"{name} requires grad, but a nearest-codeword search has no gradient on any "
                f"backend; pass {name}.detach() (and, for a differentiable distance, compute "
                f"it from codebook[indices])"
            )


def _check_finite(tensor: torch.Tensor, what: str) -> None:
    """NaN or infinity in any input is rejected here, before any backend sees it: backends
    would otherwise disagree (an infinite codeword wins every row in one, a NaN row gets
    distance 0 in another)."""
    NonFiniteError.check(tensor, f"{what} holds", "nearest-codeword search needs finite inputs")


def _empty(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.empty(0, dtype=torch.int64, device=x.device),
        torch.empty(0, dtype=x.dtype, device=x.device),
    )
