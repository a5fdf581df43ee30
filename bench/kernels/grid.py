"""The benchmark grids: which (N, K, D, dtype, distance) cases ``rvqvae-bench kernels`` times."""

from __future__ import annotations

from dataclasses import dataclass

from rvqvae.errors import UserError

HEADLINE = dict(n=65536, k=512, d=64, dtype="float32")
"""The shape the CPU goal is stated for: N = 65,536 vectors, K = 512 codewords, D = 64, fp32."""


@dataclass(frozen=True)
class Case:
    """One timed problem: N query vectors, K codewords, dimension D, dtype, plain or weighted."""

    n: int
    k: int
    d: int
    dtype: str = "float32"
    distance: str = "plain"  # "plain" | "weighted"

    @property
    def flop(self) -> int:
        """Work of the GEMM form, 2 N K D (the count GFLOP/s is reported against)."""
        return 2 * self.n * self.k * self.d

    def label(self) -> str:
        return f"N={self.n} K={self.k} D={self.d} {self.dtype} {self.distance}"


def grid(name: str) -> list[Case]:
    """``quick``: the headline shape plain + weighted, a K sweep, one float64 case (~2 min).

    ``full``: K in 64..4096 for D in 16, 64, 256 (float32, plain + weighted) and the float64
    K sweep at D = 64 — tens of minutes on two cores.
    """
    n, d = HEADLINE["n"], HEADLINE["d"]
    if name == "quick":
        cases = [Case(n, k, d, "float32", dist) for k in (128, 512, 2048)
                 for dist in ("plain", "weighted")]
        return cases + [Case(n, 512, d, "float64", "plain")]
    if name == "full":
        ks = (64, 128, 256, 512, 1024, 2048, 4096)
        cases = [Case(n, k, dim, "float32", dist) for dim in (16, 64, 256) for k in ks
                 for dist in ("plain", "weighted")]
        return cases + [Case(n, k, d, "float64", dist) for k in ks
                        for dist in ("plain", "weighted")]
    raise UserError(f"kernel grid {name!r} is unknown; known: full, quick")
