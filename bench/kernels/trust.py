"""When a kernel table's numbers are not to be trusted: the machine was busy.

A timed case is marked ``busy`` when its timing spread is high (the IQR over its timed blocks
above :data:`IQR_LIMIT_PCT` % of the median) or when the same-shape GEMM, timed in the same
repeat, ran below :data:`GEMM_FLOOR` of this machine's own recent GEMM rate for that shape (the
median of its last :data:`RECENT` quiet measurements, kept per CPU model, thread count and
device in ``$RVQVAE_HOME/kernels/gemm_rates.json``). A shared machine's load slows the GEMM as
much as the search, so the ratios may survive it, but the rates do not. Only unmarked GEMM
rates are remembered, so a busy run cannot lower the bar.
"""

from __future__ import annotations

import json
from pathlib import Path
from statistics import median

from bench.kernels.grid import Case
from rvqvae.atomic import atomic_path
from rvqvae.home import cache_root

IQR_LIMIT_PCT = 25.0
GEMM_FLOOR = 0.6
RECENT = 10


def rates_path() -> Path:
    return cache_root() / "kernels" / "gemm_rates.json"


def mark_busy(rows: list[dict], machine: str, *, path: Path | None = None) -> list[str]:
    """Set every row's ``busy`` to the reason it is not trustworthy ('' if it is), remember
    the quiet GEMM rates, and return one reason per marked (repeat, case) for the warning."""
    path = path or rates_path()
    history = _read(path)
    recent = history.setdefault(machine, {})
    gemm = {(_shape(row), row.get("repeat", 0)): row for row in rows
            if row["contender"] == "gemm"}
    reasons = []
    for row in rows:
        why = []
        spread = 100 * row["iqr_s"] / row["median_s"] if row["median_s"] > 0 else 0.0
        if spread > IQR_LIMIT_PCT:
            why.append(f"IQR {spread:.0f}% of the median")
        reference = gemm.get((_shape(row), row.get("repeat", 0)))
        known = recent.get(_shape(row), [])
        if reference is not None and known and \
                reference["gflops"] < GEMM_FLOOR * median(known):
            why.append(f"GEMM at {reference['gflops'] / median(known):.0%} of this machine's "
                       f"recent {median(known):.0f} GFLOP/s")
        row["busy"] = "; ".join(why)
        if why and row["contender"] == "gemm":
            reasons.append(f"{_shape(row)}: {row['busy']}")
    for (shape, _), row in gemm.items():
        if not row["busy"]:
            recent[shape] = (recent.get(shape, []) + [row["gflops"]])[-RECENT:]
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(history, indent=1, sort_keys=True))
    return reasons


def warning_line(reasons: list[str], rows: list[dict]) -> str | None:
    """The one-line warning the command prints when any case is marked."""
    marked = sum(1 for row in rows if row.get("busy"))
    if not marked:
        return None
    return (f"warning: the machine looks busy: {marked} of {len(rows)} timed rows marked "
            f"'busy' ({reasons[0] if reasons else 'timing spread'}); rerun on a quiet machine "
            f"before trusting the rates")


def _shape(row: dict) -> str:
    return Case.of(row).label()


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
