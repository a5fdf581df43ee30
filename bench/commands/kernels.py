"""``rvqvae-bench kernels``: time nearest-codeword backends against FAISS, VQP and the GEMM.

Writes into ``runs/kernels`` unless ``--out`` says otherwise: the committed numbers in
``results/kernels`` change only through ``tox -e bench`` (which passes ``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from rvqvae.errors import UserError

DEFAULT_OUT = "runs/kernels"  # results/kernels is curated: only `tox -e bench` refreshes it
#: option -> (largest value, why): a grid is timed repeats x rounds x min-run-time per case and
#: contender, so these keep a run within hours
LIMITS = {
    "min_run_time": (60.0, "each contender is timed at least this long per case and round"),
    "repeats": (100, "the whole grid is timed once per repeat"),
    "rounds": (100, "each case is timed once per round and contender"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where to time (default: cpu)")
    parser.add_argument("--grid", default="quick",
                        help="a registered kernel grid: ci (seconds, the CI gate), quick "
                             "(headline shape + K sweep, ~2 min), full (tens of minutes)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run the grid this many times (records: one seed per repeat; "
                             "tables: the median)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch and FAISS (default: torch's current count)")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"folder for kernels.json/.csv/.md/.png and the records cells/ "
                             f"(default: {DEFAULT_OUT})")
    parser.add_argument("--json", action="store_true",
                        help="print the result rows as JSON instead of the table")
    parser.add_argument("--only", default=None, metavar="NAMES",
                        help="comma-separated contenders to time, e.g. chunked,faiss,gemm")
    parser.add_argument("--min-run-time", type=float, default=0.3,
                        help="seconds per timing block and contender (default: 0.3)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved timing rounds per case (default: 3)")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the arguments and print the cases and contenders that would "
                             "be timed on the device, then stop")


def run(args: argparse.Namespace) -> int:
    import torch

    from bench.grid.folder import check_writable
    from bench.kernels.contenders import contenders
    from bench.kernels.grid import grid
    from bench.kernels.kernel_table import results_table, write_outputs
    from bench.kernels.timing import run_grid, select
    from bench.provenance import provenance
    from rvqvae.quantize import auto_backend_name

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda needs a CUDA GPU and none is visible; use --device cpu")
    _check_numbers(args)
    check_writable(args.out)  # before the timing: a grid's results are never lost to --out
    cases = grid(args.grid)
    only = args.only.split(",") if args.only else None
    if args.dry_run:
        entrants = select(contenders(args.device), only, args.device)
        print(f"device {args.device}: auto = {auto_backend_name(args.device)}; contenders: "
              + ", ".join(entrant.name for entrant in entrants))
        print("\n".join(case.label() for case in cases))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)  # the harness owns the process; library code never
    threads = torch.get_num_threads()

    started = time.time()
    rows = run_grid(cases, device=args.device, threads=threads, min_run_time=args.min_run_time,
                    rounds=args.rounds, repeats=args.repeats, only=only)
    from bench.kernels.trust import mark_busy, warning_line
    from bench.provenance import device_name

    busy = mark_busy(rows, device_name(args.device))
    meta = {
        **provenance(args.device), "device_type": args.device, "threads": threads,
        "grid": args.grid, "repeats": args.repeats, "min_run_time": args.min_run_time,
        "rounds": args.rounds, "command": _command(args, threads),
        "auto_backend": auto_backend_name(args.device), "wall_s": round(time.time() - started, 1),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    written = write_outputs(rows, meta, args.out)
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str))
    else:
        print(results_table(rows).to_string(index=False))
    warning = warning_line(busy, rows)
    if warning:
        print(warning, file=sys.stderr)
    files = [str(p) for p in written if p.parent.name != "cells"]
    cells = len(written) - len(files)
    print(f"wrote {', '.join(files)} and {cells} record cells under {args.out}/cells",
          file=sys.stderr)
    return 0


def _check_numbers(args: argparse.Namespace) -> None:
    """Every numeric option finite and within its bound (:data:`LIMITS`), else a UserError."""
    import os

    from bench.bounds import bounded

    for name in ("threads", "repeats", "rounds"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name} must be >= 1, got {value}")
    cpus = os.cpu_count() or 1
    for name, (high, why) in {**LIMITS, "threads": (cpus, f"this machine has {cpus}")}.items():
        value, seconds = getattr(args, name), name == "min_run_time"
        if value is not None:
            bounded(f"--{name.replace('_', '-')}", value, low=0 if seconds else 1, high=high,
                    low_open=seconds, integer=not seconds, unit=" seconds" if seconds else "",
                    why=why)


def _command(args: argparse.Namespace, threads: int) -> str:
    """The command line that repeats this measurement (every option spelled out)."""
    parts = ["rvqvae-bench kernels", f"--device {args.device}", f"--grid {args.grid}",
             f"--repeats {args.repeats}", f"--threads {threads}",
             f"--min-run-time {args.min_run_time}", f"--rounds {args.rounds}"]
    if args.only:
        parts.append(f"--only {args.only}")
    return " ".join(parts)
