"""``rvqvae-bench report RUN_DIR [--out DIR]``: tables and figures of a run (see bench.report)."""

from __future__ import annotations

import argparse
import contextlib
import errno
from pathlib import Path


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
    parser.add_argument("--primary", metavar="PATTERNS", default=None,
                        type=lambda text: [p.strip() for p in text.split(",") if p.strip()],
                        help="comma-separated metric name patterns (fnmatch) whose claims form the "
                             "verdict family (default: the catalog's primary metrics: FID, "
                             "outlier-mode rate, AUROC)")


def run(args: argparse.Namespace) -> int:
    from bench.report import write_report

    with _writable_report(args.out):
        out = write_report(args.run_dir, args.out, figures=args.figures, reference=args.reference,
                           primary=args.primary)
    print(f"report written: {out / 'README.md'}")
    return 0


@contextlib.contextmanager
def _writable_report(out: str | None):
    """``--out`` checked before anything is read (a file, a read-only disk: one line), and a
    report folder that cannot be written one :class:`UserError`, not a traceback."""
    from bench.grid.folder import check_writable
    from rvqvae.errors import UserError

    if out is not None:
        check_writable(out)
        check_writable(Path(out).absolute().parent)
    try:
        yield
    except OSError as error:
        if error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC):
            raise
        raise UserError(f"{error.filename or out}: {error.strerror}; the report needs a "
                        f"writable folder: pass --out DIR on a writable disk") from None
