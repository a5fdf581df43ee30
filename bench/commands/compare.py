"""``rvqvae-bench compare BASELINE CANDIDATE``: exit 1 when any metric regressed (bench.compare).

Exit status: 0 = no cell regressed, went missing or changed protocol; 1 = some did; 2 = bad
input (one ``rvqvae-bench: error: ...`` line, nothing written). ``--junit`` and ``--markdown``
write the same verdict for other CI systems (:mod:`bench.compare_output`).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", metavar="BASELINE",
                        help="run folder, report folder, aggregate.csv or records .json/.csv")
    parser.add_argument("candidate", metavar="CANDIDATE", help="the same kinds as BASELINE")
    parser.add_argument("--tolerance", metavar="FILE", default=None,
                        help="TOML of per-metric tolerances (default: the packaged "
                             "bench/tolerances.toml)")
    parser.add_argument("--json", action="store_true",
                        help="print the comparison as JSON instead of a table")
    parser.add_argument("--hide-unchanged", dest="show_unchanged", action="store_false",
                        help="list only the cells that changed or are problems")
    parser.add_argument("--junit", metavar="FILE",
                        help="also write the verdict as JUnit XML (one test case per compared "
                             "cell and metric, a failure for each that fails the gate)")
    parser.add_argument("--markdown", metavar="FILE",
                        help="also write the verdict as Markdown (a pull-request comment)")
    parser.add_argument("--history", metavar="FILE",
                        help="append CANDIDATE to this history file (created if absent) as a "
                             "point labelled by this checkout's commit; draw it with "
                             "'rvqvae-bench history --from FILE'")


def run(args: argparse.Namespace) -> int:
    from bench.compare import (
        compare,
        comparison_json,
        exit_status,
        format_comparison,
        load_cells,
        load_tolerances,
        machine_notes,
    )

    tolerances = load_tolerances(args.tolerance)
    baseline, candidate = load_cells(args.baseline), load_cells(args.candidate)
    tolerances.check_patterns(set(baseline["metric"]) | set(candidate["metric"]))
    result = compare(baseline, candidate, tolerances)
    _write_formats(args, result)
    if args.history:
        _append_history(args.history, candidate)
    notes = machine_notes(baseline, candidate)
    if args.json:
        print(comparison_json(result, baseline=str(args.baseline),
                              candidate=str(args.candidate), tolerances=tolerances.source,
                              machine_notes=notes))
    else:
        print(f"baseline {args.baseline} vs candidate {args.candidate} "
              f"(tolerances: {tolerances.source})")
        print("".join(f"note: {line} (not a failure)\n" for line in notes))
        print(format_comparison(result, show_unchanged=args.show_unchanged))
    return exit_status(result)


def _write_formats(args: argparse.Namespace, result) -> None:
    from bench.cache import atomic_write_text
    from bench.compare_output import comparison_junit, comparison_markdown
    from bench.grid.folder import check_writable

    for option, path in (("--junit", args.junit), ("--markdown", args.markdown),
                         ("--history", args.history)):
        if path is not None:
            check_writable(Path(path).parent, option)
    if args.junit:
        atomic_write_text(Path(args.junit), comparison_junit(result))
    if args.markdown:
        atomic_write_text(Path(args.markdown), comparison_markdown(
            result, baseline=str(args.baseline), candidate=str(args.candidate)))


def _append_history(path: str, candidate) -> None:
    import time

    from bench.history import Point, append_point
    from bench.provenance import git_sha

    sha = git_sha()
    append_point(path, Point(sha[:9] if sha != "unknown" else time.strftime("%Y-%m-%dT%H:%M"),
                             sha, time.strftime("%Y-%m-%d"), candidate))
