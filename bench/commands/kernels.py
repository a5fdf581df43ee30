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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where to time (default: cpu)")
    parser.add_argument("--grid", choices=("quick", "full"), default="quick",
                        help="quick: headline shape + K sweep (~2 min); full: tens of minutes")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch and FAISS (default: torch's current count)")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"folder for kernels.json/.csv/.md/.png (default: {DEFAULT_OUT})")
    parser.add_argument("--json", action="store_true",
                        help="print the result rows as JSON instead of the table")
    parser.add_argument("--only", default=None, metavar="NAMES",
                        help="comma-separated contenders to time, e.g. chunked,faiss,gemm")
    parser.add_argument("--min-run-time", type=float, default=0.3,
                        help="seconds per timing block and contender (default: 0.3)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved timing rounds per case (default: 3)")


def run(args: argparse.Namespace) -> int:
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda needs a CUDA GPU and none is visible; use --device cpu")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)  # the harness owns the process; library code never
    threads = torch.get_num_threads()

    from bench.kernels.grid import grid
    from bench.kernels.report import results_table, write_outputs
    from bench.kernels.runner import run_grid
    from bench.provenance import provenance
    from rvqvae.quantize import auto_backend_name

    started = time.time()
    rows = run_grid(grid(args.grid), device=args.device, threads=threads,
                    min_run_time=args.min_run_time, rounds=args.rounds,
                    only=args.only.split(",") if args.only else None)
    meta = {
        **provenance(args.device), "threads": threads, "grid": args.grid,
        "auto_backend": auto_backend_name(args.device), "wall_s": round(time.time() - started, 1),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    written = write_outputs(rows, meta, args.out)
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str))
    else:
        print(results_table(rows).to_string(index=False))
    print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    return 0
