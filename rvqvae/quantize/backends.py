"""The registry of nearest-codeword search backends and the ``auto`` choice.

A backend is a :class:`Backend`: a ``search(x, codebook, weights)`` function, an
``available(device)`` check and, optionally, a ``directional(x, codebook, covariance, eps)``
function. Backends receive validated, non-empty inputs on one device (see
:func:`rvqvae.quantize.nearest`) and return ``(int64 indices, distances)``.

Registered here:

- ``torch-cdist`` the simple reference: ``torch.cdist(x', e') ** 2`` then ``argmin`` (weights by
  scaling both sides with ``sqrt(w)``). Materialises N x K.
- ``chunked``     the GEMM form in cache-sized row blocks (:mod:`rvqvae.quantize.chunked`).
- ``fused``       a C++ kernel built for this CPU at first use: distance tile + running argmin
  in registers, never an N x K matrix, blocking tuned per machine
  (:mod:`rvqvae.quantize.fused_cpu`, :mod:`rvqvae.quantize.tuning`); CPU only.
- ``compiled``    ``torch.compile`` of the chunked block step (:mod:`rvqvae.quantize.compiled`).
- ``triton``      a fused distance + running-argmin Triton kernel
  (:mod:`rvqvae.quantize.triton_kernel`); CUDA tensors, or CPU tensors when
  ``TRITON_INTERPRET=1`` was set before Triton was imported.
- ``auto``        CUDA: ``triton`` when available, else ``chunked``; CPU: ``fused`` when it builds
  (a C++ compiler is present), else ``chunked``. ``fused`` was the fastest project backend at
  every K of the kernel benchmark (results/kernels: 1.6-2.2x FAISS, at or above the same-shape
  GEMM); ``compiled`` was slower than ``chunked`` and costs seconds of compilation.

Register your own with ``BACKENDS.register("name", Backend(...), description="...")``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from rvqvae.errors import UserError
from rvqvae.quantize import compiled, fused_cpu, triton_kernel, tuning
from rvqvae.quantize.chunked import (
    compute_dtype,
    exact_distances,
    nearest_chunked,
    nearest_directional_chunked,
)
from rvqvae.registry import Registry

SearchFn = Callable[..., tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Backend:
    """One way of searching: ``search`` (plain/weighted), ``available(device)``, ``directional``;
    ``why_unavailable(device)`` optionally says why it is not available (and what to do)."""

    search: SearchFn
    available: Callable[[torch.device], bool]
    directional: SearchFn | None = None
    why_unavailable: Callable[[torch.device], str] | None = None


BACKENDS: Registry[Backend] = Registry("quantizer backend")


def resolve_backend(name: str, device: torch.device | str, *, directional: bool = False
                    ) -> tuple[str, Backend]:
    """The concrete ``(name, Backend)`` to use for ``name`` on ``device``.

    ``auto`` is resolved to a concrete backend (one with a directional form when
    ``directional``); any other name must be registered (else a
    :class:`UserError` listing the names) and available on the device (else a
    :class:`UserError` saying so and naming the ones that are).
    """
    device = torch.device(device)
    if name == "auto":
        name = auto_backend_name(device, directional=directional)
    backend = BACKENDS.get(name)
    if not backend.available(device):
        usable = ", ".join(available_backends(device))
        reason = backend.why_unavailable(device) if backend.why_unavailable else ""
        raise UserError(
            f"quantizer backend {name!r} is not available on {device.type}"
            f"{': ' + reason if reason else ''}; available there: {usable}"
        )
    return name, backend


AUTO_ORDER = {"cuda": ("triton", "chunked"), "cpu": ("fused", "chunked")}


def auto_backend_name(device: torch.device | str, *, directional: bool = False) -> str:
    """The backend ``auto`` stands for on ``device`` (see the module docstring for why): the
    first of :data:`AUTO_ORDER` that is available there (and, for the ``directional`` distance,
    has a directional form: ``chunked`` today); ``chunked`` works everywhere."""
    device = torch.device(device)
    for name in AUTO_ORDER.get(device.type, ()):
        backend = BACKENDS.get(name)
        if backend.available(device) and (backend.directional is not None or not directional):
            return name
    return "chunked"


def available_backends(device: torch.device | str) -> list[str]:
    """Names of concrete backends (``auto`` excluded) usable on ``device``."""
    device = torch.device(device)
    return [n for n in BACKENDS.names() if n != "auto" and BACKENDS.get(n).available(device)]


def nearest_cdist(
    x: torch.Tensor, codebook: torch.Tensor, weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.cdist(x, e) ** 2`` then ``argmin``: simple, materialises N x K. Half types are
    searched in float32, as by the other backends (``torch.cdist`` has no half kernels)."""
    x, codebook = _in_compute_dtype(x, codebook)
    if weights is None:
        distances = torch.cdist(x, codebook, compute_mode="donot_use_mm_for_euclid_dist")
        indices = distances.argmin(dim=1)
        return indices, distances.gather(1, indices[:, None]).squeeze(1).square()
    # Centre before scaling: sqrt(w) * x rounds |x| away, which matters far from the origin.
    root = weights.to(x.dtype).sqrt()
    centre = codebook.mean(dim=0)
    distances = torch.cdist(
        (x - centre) * root, (codebook - centre) * root,
        compute_mode="donot_use_mm_for_euclid_dist",
    )
    indices = distances.argmin(dim=1)
    return indices, exact_distances(x, codebook, indices, weights.to(x.dtype))


def nearest_directional_cdist(
    x: torch.Tensor, codebook: torch.Tensor, covariance: torch.Tensor, eps: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """Directional distance by direct broadcasting (N x K x D memory): small problems only."""
    x, codebook = _in_compute_dtype(x, codebook)
    covariance = covariance.to(x.dtype)
    r = x[:, None, :] - codebook[None, :, :]
    norm2 = r.square().sum(-1)
    quad = ((r @ covariance) * r).sum(-1)
    safe = torch.where(norm2 > 0, quad + eps * norm2, torch.ones_like(norm2))
    distances = torch.where(norm2 > 0, norm2 * norm2 / safe, torch.zeros_like(norm2))
    indices = distances.argmin(dim=1)
    return indices, distances.gather(1, indices[:, None]).squeeze(1)


def _in_compute_dtype(x: torch.Tensor, codebook: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    dtype = compute_dtype(x.dtype)
    return x.to(dtype), codebook.to(dtype)


def _always(device: torch.device) -> bool:
    return True


BACKENDS.register(
    "torch-cdist",
    Backend(nearest_cdist, _always, nearest_directional_cdist),
    source=__name__,
    description="torch.cdist(x, e)**2 then argmin; the simple reference (materialises N x K)",
)
BACKENDS.register(
    "chunked",
    Backend(nearest_chunked, _always, nearest_directional_chunked),
    source=nearest_chunked.__module__,
    description="GEMM form |e|^2 - 2x.e in cache-sized row blocks, centred, exact distances",
)
BACKENDS.register(
    "fused",
    Backend(tuning.nearest_tuned, fused_cpu.available,
            why_unavailable=fused_cpu.why_unavailable),
    source=fused_cpu.__name__,
    description="C++ kernel built for this CPU at first use: distance tiles reduced to a "
    "running argmin in registers, blocking tuned per machine",
)
BACKENDS.register(
    "compiled",
    Backend(compiled.nearest_compiled, compiled.available),
    source=compiled.__name__,
    description="torch.compile of the chunked block step (lazy, cached per shape and dtype)",
)
BACKENDS.register(
    "triton",
    Backend(triton_kernel.nearest_triton, triton_kernel.available),
    source=triton_kernel.__name__,
    description="fused distance + running-argmin Triton kernel streaming codeword tiles",
)
BACKENDS.register(
    "auto",
    Backend(lambda *a, **k: None, _always),  # resolved by resolve_backend, never called
    description="CUDA: triton if available else chunked; CPU: fused if it builds else chunked",
)
