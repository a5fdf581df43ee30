"""``rvqvae-bench history``: a metric's mean and seed spread across commits, as a table and one
trend figure per metric, with the commits where the gate flagged a change marked.

    rvqvae-bench history --git results/baselines/ci.csv --out results/history
    rvqvae-bench history runs/a runs/b runs/c --metric 'fid_domain_\\d+' --out hist
    rvqvae-bench history --from history.csv --out hist     # a file 'compare --history' appends to

Writes ``OUT/history.csv`` (one row per point, scenario, model and metric, with the gate's
outcome against the point before), ``OUT/README.md`` (a table per metric) and
``OUT/figures/history__<metric>.png|pdf``. Nothing is written when an input is bad.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="*", metavar="SOURCE",
                        help="result sets in order (run folders, report folders, aggregate.csv "
                             "or records files), after the --git and --from points")
    parser.add_argument("--git", metavar="FILE",
                        help="a results file tracked by git: one point per commit that changed "
                             "it, oldest first")
    parser.add_argument("--repo", default=".", help="the git checkout of --git (default: .)")
    parser.add_argument("--since", metavar="REV", help="--git: only commits after REV")
    parser.add_argument("--from", dest="history_file", metavar="FILE",
                        help="a history file written by 'compare --history FILE'")
    parser.add_argument("--metric", nargs="+", metavar="REGEX",
                        help="metrics to show (regular expressions matching whole names; "
                             "default: the catalog's primary metrics)")
    parser.add_argument("--out", required=True, help="folder for the table and figures")
    parser.add_argument("--no-figures", action="store_true", help="write the tables only")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.cache import atomic_write_text
    from bench.grid.folder import check_writable
    from bench.history import (
        history_markdown,
        history_table,
        point_from_source,
        points_from_file,
        points_from_git,
    )
    from rvqvae.errors import UserError

    points = []
    if args.git:
        points += points_from_git(args.git, repo=args.repo, since=args.since)
    if args.history_file:
        points += points_from_file(args.history_file)
    points += [point_from_source(source) for source in args.sources]
    if not points:
        raise UserError("give --git FILE, --from FILE or result sets to draw a history of")
    table = history_table(points, args.metric)
    out = Path(args.out)
    check_writable(out, "--out")
    metrics = sorted(table["metric"].unique())
    figures = []
    if not args.no_figures:
        from bench.report.figures import FIGURES, history_figure

        (out / FIGURES).mkdir(parents=True, exist_ok=True)
        figures = [history_figure(table, metric, out) for metric in metrics]
    atomic_write_text(out / "history.csv", table.to_csv(index=False))
    source = args.git and f"`{args.git}` at each commit that changed it" or "the given result sets"
    flagged = table[table["outcome"].isin(["regressed", "improved"])]
    lines = [f"# Results history: {len(points)} points, {len(metrics)} metric(s)", "",
             f"From {source}. Command: `rvqvae-bench history "
             + " ".join(_argv(args)) + "`.", "",
             f"{len(flagged)} (scenario, model, metric) changes flagged by the gate's rule "
             f"between successive points.", ""]
    lines += [f"![{figure.title}]({figure.stem}.png)\n\n{figure.caption}\n" for figure in figures]
    atomic_write_text(out / "README.md", "\n".join(lines) + "\n" + history_markdown(table))
    print(f"history of {len(points)} point(s), {len(metrics)} metric(s) written to {out}")
    return 0


def _argv(args: argparse.Namespace) -> list[str]:
    parts = [*args.sources]
    for option, value in (("--git", args.git), ("--since", args.since),
                          ("--from", args.history_file)):
        if value:
            parts += [option, value]
    if args.repo != ".":
        parts += ["--repo", args.repo]
    if args.metric:
        parts += ["--metric", *(f"'{m}'" for m in args.metric)]
    return [*parts, "--out", args.out] + (["--no-figures"] if args.no_figures else [])
