"""The benchmark grids: which (N, K, D, dtype, distance) cases ``rvqvae-bench kernels`` times.

Grids live in :data:`KERNEL_GRIDS` (the project's one registry pattern); add one with
``KERNEL_GRIDS.register("name", lambda: [Case(...), ...], description="...")``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rvqvae.registry import Registry

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

    def label(self) -> str:
        return f"N={self.n} K={self.k} D={self.d} {self.dtype} {self.distance}"

    @classmethod
    def of(cls, row: dict) -> Case:
        """The case of a timing row (its ``n, k, d, dtype, distance``)."""
        return cls(row["n"], row["k"], row["d"], row["dtype"], row["distance"])


KERNEL_GRIDS: Registry[Callable[[], list[Case]]] = Registry("kernel grid")


def grid(name: str) -> list[Case]:
    """The cases of the grid registered as ``name`` (a UserError listing the known ones)."""
    return KERNEL_GRIDS.get(name)()


def _both(n: int, ks, d: int, dtype: str = "float32") -> list[Case]:
    return [Case(n, k, d, dtype, distance) for k in ks for distance in ("plain", "weighted")]


KERNEL_GRIDS.register(
    "ci", lambda: _both(16384, (128, 512), 64),
    description="the CI kernel-speed gate: N=16,384, K in 128, 512, D=64, fp32 (seconds)",
)
KERNEL_GRIDS.register(
    "quick",
    lambda: _both(HEADLINE["n"], (128, 512, 2048), HEADLINE["d"])
    + [Case(HEADLINE["n"], 512, HEADLINE["d"], "float64", "plain")],
    description="the headline shape plain + weighted, K in 128, 512, 2048, one float64 case "
    "(~2 min)",
)
KERNEL_GRIDS.register(
    "full",
    lambda: [case for dim in (16, 64, 256)
             for case in _both(HEADLINE["n"], (64, 128, 256, 512, 1024, 2048, 4096), dim)]
    + _both(HEADLINE["n"], (64, 128, 256, 512, 1024, 2048, 4096), HEADLINE["d"], "float64"),
    description="K in 64..4096 for D in 16, 64, 256 (fp32) and the float64 K sweep at D=64 "
    "(tens of minutes)",
)
