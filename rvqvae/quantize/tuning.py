"""Per-machine blocking for the ``fused`` backend: measured once, cached, overridable.

The fused kernel walks ``rows`` query rows at a time against groups of ``group`` codeword
panels (one panel = 2 SIMD registers of codewords x D). Which pair runs fastest depends on the
CPU's caches, the thread count and the problem's shape, so it is measured, not guessed:

- **key**: CPU model, thread count, dtype and shape class (K and D rounded up to powers of
  two); a different CPU or thread count gets its own measurement;
- **measurement**: on the first search of a key, every candidate in :func:`candidates` is timed
  on a synthetic problem of that class (about 1 GFLOP at most, a few tenths of a second in all)
  and the fastest is kept; results never depend on the choice (the kernel computes every score
  the same way whatever the blocking), only the time does;
- **cache**: ``$RVQVAE_HOME/kernels/tuning.json`` (one entry per key, written atomically), so
  later processes on the machine reuse it;
- **override**: ``RVQVAE_FUSED_BLOCKING="rows,group"`` (e.g. ``256,8``) wins over everything;
  ``RVQVAE_KERNEL_TUNING=off`` uses :func:`default_blocking` without measuring or writing.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from rvqvae.atomic import atomic_path
from rvqvae.errors import UserError
from rvqvae.quantize import fused_cpu
from rvqvae.quantize.chunked import compute_dtype

ROW_CANDIDATES = (64, 256, 1024)
GROUP_BYTES = (32 << 10, 256 << 10, 1 << 20)
TUNE_FLOP = 1e9
REPEATS = 3


@dataclass(frozen=True)
class Tuned:
    """The chosen blocking for one key and the time it took on the synthetic problem."""

    rows: int
    group: int
    seconds: float
    tune_rows: int
    candidates: int


_MEMO: dict[str, tuple[int, int]] = {}


def blocking_for(k: int, d: int, dtype: torch.dtype, threads: int) -> tuple[int, int]:
    """``(rows, group)`` for a search of K codewords of dimension D (see the module doc)."""
    override = os.environ.get("RVQVAE_FUSED_BLOCKING")
    if override:
        return parse_blocking(override)
    if os.environ.get("RVQVAE_KERNEL_TUNING", "").lower() in ("off", "0", "false"):
        return default_blocking(k, d, dtype)
    key = tuning_key(k, d, dtype, threads)
    if key not in _MEMO:
        cached = load_cache().get(key)
        if cached is None:
            cached = asdict(tune(k, d, dtype, threads))
            store(key, cached)
        _MEMO[key] = (int(cached["rows"]), int(cached["group"]))
    return _MEMO[key]


def tune(k: int, d: int, dtype: torch.dtype, threads: int, *, timer=time.perf_counter) -> Tuned:
    """Time every candidate on a synthetic problem of (K, D)'s shape class; the fastest wins."""
    k_class, d_class = _ceil_pow2(k), _ceil_pow2(d)
    mr, _ = fused_cpu.tile_shape(dtype)
    rows = int(min(16384, max(64 * mr, TUNE_FLOP / (2 * k_class * d_class))))
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, d_class, generator=generator, dtype=dtype)
    codebook = torch.randn(k_class, d_class, generator=generator, dtype=dtype)
    timings = {}
    for blocking in candidates(k_class, d_class, dtype):
        fused_cpu.nearest_fused(x, codebook, blocking=blocking, threads=threads)  # warm-up
        runs = []
        for _ in range(REPEATS):
            start = timer()
            fused_cpu.nearest_fused(x, codebook, blocking=blocking, threads=threads)
            runs.append(timer() - start)
        timings[blocking] = min(runs)
    best = min(timings, key=timings.get)
    return Tuned(best[0], best[1], timings[best], rows, len(timings))


def candidates(k: int, d: int, dtype: torch.dtype) -> list[tuple[int, int]]:
    """Row blocks x codeword groups of about 32 KiB, 256 KiB, 1 MiB and the whole codebook."""
    panel_bytes = _panel_bytes(d, dtype)
    _, nr = fused_cpu.tile_shape(dtype)
    panels = -(-k // nr)
    groups = sorted({max(1, min(panels, size // panel_bytes)) for size in GROUP_BYTES} | {panels})
    return [(rows, group) for rows in ROW_CANDIDATES for group in groups]


def default_blocking(k: int, d: int, dtype: torch.dtype) -> tuple[int, int]:
    """The untuned choice: 256 rows, codeword groups of about 256 KiB (half a typical L2)."""
    return 256, max(1, (256 << 10) // _panel_bytes(d, dtype))


def parse_blocking(text: str) -> tuple[int, int]:
    """``"rows,group"`` -> ``(rows, group)``; a :class:`UserError` for anything else."""
    parts = text.replace(" ", "").split(",")
    if len(parts) == 2 and all(p.isdigit() and int(p) > 0 for p in parts):
        return int(parts[0]), int(parts[1])
    raise UserError(
        f"RVQVAE_FUSED_BLOCKING={text!r} is not 'rows,group' with two positive integers "
        "(e.g. '256,8'); unset it to use the measured blocking"
    )


def tuning_key(k: int, d: int, dtype: torch.dtype, threads: int) -> str:
    dtype_name = str(dtype).removeprefix("torch.")
    return (f"{fused_cpu.cpu_model()} | threads={threads} | {dtype_name} "
            f"| K<={_ceil_pow2(k)} | D<={_ceil_pow2(d)}")


def cache_path() -> Path:
    return fused_cpu.build_dir().parent / "tuning.json"


def load_cache() -> dict:
    """Every cached measurement (an unreadable file counts as empty and is rewritten)."""
    try:
        return json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}


def store(key: str, entry: dict) -> None:
    """Add one entry to the cache (read, update, atomic replace; a lost race loses one entry)."""
    entries = load_cache()
    entries[key] = entry
    with atomic_path(cache_path()) as tmp:
        tmp.write_text(json.dumps(entries, indent=1, sort_keys=True))


def _panel_bytes(d: int, dtype: torch.dtype) -> int:
    _, nr = fused_cpu.tile_shape(dtype)
    return (d + 1) * nr * torch.empty((), dtype=dtype).element_size()


def _ceil_pow2(value: int) -> int:
    return 1 << max(0, (value - 1).bit_length())


def nearest_tuned(x: torch.Tensor, codebook: torch.Tensor, weights: torch.Tensor | None = None,
                  *, threads: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``fused`` backend: :func:`~rvqvae.quantize.fused_cpu.nearest_fused` with this
    machine's tuned blocking for the codebook's shape, dtype and thread count."""
    threads = threads or torch.get_num_threads()
    blocking = blocking_for(codebook.shape[0], x.shape[1], compute_dtype(x.dtype), threads)
    return fused_cpu.nearest_fused(x, codebook, weights, blocking=blocking, threads=threads)
