"""``rvqvae-bench report RUN_DIR [--out DIR]``: tables and figures of a run (see bench.report)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by 'run'")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="where to write the report (default: RUN_DIR/report); an earlier "
                             "report there is replaced, any other folder is refused")
    parser.add_argument("--no-figures", dest="figures", action="store_false",
                        help="tables and aggregate.csv only (fast; no seaborn/matplotlib)")
    parser.add_argument("--reference", metavar="MODEL", default=None,
                        help="the model every other model is compared with, seed by seed, in the "
                             "claims table (default: vqvae, skipped with a note when the run has "
                             "no vqvae; a MODEL not in the run is an error)")


def run(args: argparse.Namespace) -> int:
    from bench.report import write_report

    out = write_report(args.run_dir, args.out, figures=args.figures, reference=args.reference)
    print(f"report written: {out / 'README.md'}")
    return 0
