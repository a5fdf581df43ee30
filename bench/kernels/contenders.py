"""Everything ``rvqvae-bench kernels`` times on one case: our backends, the peers, the roofline.

A :class:`Contender` turns a prepared problem into a zero-argument callable; set-up that a user
would do once (building a FAISS index, scaling the codebook) happens outside the timed call,
per-query work (scaling the queries by sqrt(w), converting to numpy) inside it.

- ``auto``: what :func:`rvqvae.quantize.nearest` uses by default on the device (the kernel-speed
  gate watches it: a fallback to a slow backend shows in its ratios);
- every concrete backend of :data:`rvqvae.quantize.BACKENDS` available on the device;
- ``faiss``: ``IndexFlatL2.search(x, 1)`` (on a GPU index when faiss has GPU support and the
  device is cuda); weighted distance by the same sqrt(w) scaling of queries and codebook;
- ``vqp``: vector-quantize-pytorch's distance + argmin path, i.e. exactly what
  ``EuclideanCodebook.forward`` runs to pick codes (``cdist`` of its module, then arg-extremum),
  without the one-hot, EMA and module overhead of a full ``VectorQuantize`` forward (which would
  only be slower); weighted by sqrt(w) scaling;
- ``gemm``: the same-shape ``x @ e.T`` into a preallocated output, the practical roofline.

Like for like: a row compares with FAISS only when both search exactly in the same dtype
(:func:`comparison_note` says what differs otherwise, e.g. our float64 against FAISS's float32,
which is all FAISS computes in).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from rvqvae.quantize import BACKENDS, available_backends, nearest


@dataclass(frozen=True)
class Problem:
    """The tensors of one case on its device (``weights`` None for the plain distance)."""

    x: torch.Tensor
    codebook: torch.Tensor
    weights: torch.Tensor | None


@dataclass(frozen=True)
class Contender:
    """``prepare(problem)`` -> ``run()`` returning int64 indices (N,) (or None for ``gemm``).

    ``max_flop`` / ``max_output_bytes``: slow contenders (and the N x K output of ``gemm``) are
    timed on the first rows only, so a grid stays minutes and memory bounded; vectors/s stays a
    per-vector rate (every contender is linear in N).
    """

    name: str
    kind: str  # "backend" | "peer" | "roofline"
    prepare: Callable[[Problem], Callable[[], torch.Tensor | None]]
    max_flop: float = float("inf")
    max_output_bytes: float = float("inf")
    dtype: str | None = None  # the dtype it always computes in (FAISS: float32); None: the case's
    search: str = "exact"  # "exact" | "approximate" | "none" (the GEMM roofline searches nothing)

    def computes_in(self, dtype: str) -> str:
        """The dtype this contender computes a case of ``dtype`` in (half types: float32)."""
        return self.dtype or ("float64" if dtype == "float64" else "float32")

    def rows_timed(self, n: int, k: int, d: int, itemsize: int) -> int:
        """How many of the N rows this contender is timed on (all, unless it is capped)."""
        rows = min(n, self.max_flop / (2 * k * d), self.max_output_bytes / (k * itemsize))
        return max(1, min(n, int(rows)))


def contenders(device: str) -> list[Contender]:
    """All contenders runnable on ``device``, backends first, then peers, then the roofline."""
    found = [_backend(name) for name in ["auto", *available_backends(device)]]
    if faiss_usable(device):
        found.append(Contender("faiss", "peer", _prepare_faiss, dtype="float32"))
    if _vqp_cdist() is not None:
        found.append(Contender("vqp", "peer", _prepare_vqp, max_flop=2e9))
    found.append(Contender("gemm", "roofline", _prepare_gemm, max_output_bytes=2**29,
                           search="none"))
    return found


def comparison_note(entrant: Contender, dtype: str, peer: Contender | None) -> str:
    """'' when ``entrant`` and ``peer`` (FAISS) compute the same search, else what differs."""
    if entrant.search == "none":
        return "roofline: a GEMM, no search"
    if peer is None or entrant is peer:
        return ""
    notes = []
    mine, theirs = entrant.computes_in(dtype), peer.computes_in(dtype)
    if mine != theirs:
        notes.append(f"{mine} vs {peer.name} {theirs}")
    if entrant.search != peer.search:
        notes.append(f"{entrant.search} vs {peer.name} {peer.search}")
    return "; ".join(notes)


def _backend(name: str) -> Contender:
    def prepare(problem: Problem):
        return lambda: nearest(problem.x, problem.codebook, problem.weights, backend=name)[0]

    slow = {"torch-cdist": 1e9}  # exact (non-GEMM) cdist: ~20x below the GEMM rate
    return Contender(name, "backend", prepare, max_flop=slow.get(name, float("inf")))


def _prepare_faiss(problem: Problem):
    import faiss

    x, codebook, weights = problem.x, problem.codebook, problem.weights
    root = None if weights is None else weights.to(x.dtype).sqrt()
    base = (codebook if root is None else codebook * root).float()
    index = faiss.IndexFlatL2(codebook.shape[1])
    if x.is_cuda:
        resources = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(resources, torch.cuda.current_device(), index)
        index.resources = resources  # keep alive with the index
    index.add(base.cpu().numpy())

    def run():
        queries = (x if root is None else x * root).float()
        _, found = index.search(queries.cpu().numpy(), 1)
        return torch.from_numpy(found[:, 0])

    return run


def _prepare_vqp(problem: Problem):
    cdist = _vqp_cdist()
    x, codebook, weights = problem.x, problem.codebook, problem.weights
    root = None if weights is None else weights.to(x.dtype).sqrt()
    embed = (codebook if root is None else codebook * root)[None]

    def run():
        queries = (x if root is None else x * root)[None]
        return (-cdist(queries, embed)).argmax(dim=-1)[0]  # as EuclideanCodebook.forward

    return run


def _prepare_gemm(problem: Problem):
    x, codebook = problem.x, problem.codebook
    out = torch.empty((x.shape[0], codebook.shape[0]), dtype=x.dtype, device=x.device)
    codebook_t = codebook.t()

    def run():
        torch.mm(x, codebook_t, out=out)
        return None

    return run


def faiss_usable(device: str) -> bool:
    """FAISS is importable and, for ``cuda``, built with GPU support (faiss-gpu)."""
    try:
        import faiss
    except ImportError:
        return False
    return device == "cpu" or hasattr(faiss, "StandardGpuResources")


def _vqp_cdist():
    try:
        from vector_quantize_pytorch.vector_quantize_pytorch import cdist
    except ImportError:
        return None
    return cdist


__all__ = ["BACKENDS", "Contender", "Problem", "contenders"]
