"""Kernel benchmark rows as ordinary result records, so ``report`` and ``compare`` read them.

One cell per (case, contender, repeat): ``scenario`` names the case
(``kernel_n65536_k512_d64_float32_plain``), ``model`` the contender, ``seed`` the repeat. Metrics
(see :mod:`bench.metrics.catalog`): ``vectors_per_s``, ``gflops``, ``compile_s`` for every
contender; ``ratio_faiss`` and ``pct_gemm``, the same-repeat ratios the kernel-speed gate
watches, for every contender but the one they divide by; ``agreement`` (the fraction of checked
rows whose codeword is a true nearest one) for every contender that searches. ``protocol``
holds what makes two measurements comparable (shape, dtype, distance, device type, threads,
timing settings); the CPU model and library versions go into ``device`` / ``versions`` like
every record's.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.kernels.grid import Case
from bench.records import CELLS, cell_id, make_record, write_cell

METRICS = ("vectors_per_s", "gflops", "compile_s", "ratio_faiss", "pct_gemm", "agreement")
_DIVIDES_BY = {"ratio_faiss": "faiss", "pct_gemm": "gemm"}
_ROW_KEY = {"agreement": "agree"}  # the timing row's name for it


def scenario_name(case: Case) -> str:
    return f"kernel_n{case.n}_k{case.k}_d{case.d}_{case.dtype}_{case.distance}"


def to_records(rows: list[dict], meta: dict) -> dict[str, list[dict]]:
    """``{cell_id: records}`` for timing rows of :func:`bench.kernels.timing.run_grid`."""
    cells: dict[str, list[dict]] = {}
    for row in rows:
        case = Case.of(row)
        scenario, model, seed = scenario_name(case), row["contender"], row["repeat"]
        protocol = {
            "benchmark": "kernels", "n": case.n, "k": case.k, "d": case.d, "dtype": case.dtype,
            "distance": case.distance, "device": meta["device_type"], "threads": row["threads"],
            "min_run_time": meta["min_run_time"], "rounds": meta["rounds"],
            "rows_timed": row["rows_timed"],
        }
        key = cell_id(scenario, model, seed)
        # the same-run ratios only for our own backends: a peer's ratio to another peer (the
        # GEMM's to FAISS, FAISS's to the GEMM) judges no code of ours, and a loaded machine
        # moves it most (the GEMM suffers more than FAISS): the gate must not fail on it
        values = {metric: row[_ROW_KEY.get(metric, metric)] for metric in METRICS
                  if metric not in _DIVIDES_BY or row["kind"] == "backend"}
        if row["kind"] == "roofline":  # the GEMM searches nothing: no agreement to check
            values.pop("agreement")
        cells[key] = [
            make_record(
                scenario=scenario, model=model, seed=seed, metric=metric, value=value,
                status="ok" if value is not None else "undefined",
                error=None if value is not None else f"no {_DIVIDES_BY[metric]} in this run",
                protocol=protocol, git_sha=meta["git_sha"], versions=meta["versions"],
                device=meta["device"], wall_s=row["median_s"], cell_id=key,
                timestamp=meta["timestamp"],
            )
            for metric, value in values.items()
        ]
    return cells


def write_records(rows: list[dict], meta: dict, out_dir: str | Path) -> list[Path]:
    """Every cell under ``out_dir/cells/`` (as ``rvqvae-bench run`` writes them), then remove
    kernel cells of an earlier run that this one did not write (so the folder holds one run);
    ``out_dir/aggregate.csv``, the records over repeats as ``rvqvae-bench report`` aggregates
    them (a baseline for ``compare``); ``out_dir/kernels-run.json`` with the settings."""
    import pandas as pd

    from bench.cache import atomic_write_text
    from bench.report.aggregate import aggregate

    out_dir = Path(out_dir)
    cells = to_records(rows, meta)
    written = [write_cell(out_dir, key, records) for key, records in cells.items()]
    for stale in (out_dir / CELLS).glob("kernel_*.json"):
        if stale.stem not in cells:
            stale.unlink()
    frame = pd.DataFrame([record for records in cells.values() for record in records])
    written.append(atomic_write_text(out_dir / "aggregate.csv",
                                     aggregate(frame).to_csv(index=False)))
    written.append(atomic_write_text(out_dir / "kernels-run.json", json.dumps(
        {"benchmark": "kernels", **meta}, indent=2, default=str) + "\n"))
    return written
