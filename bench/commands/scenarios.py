"""``rvqvae-bench scenarios``: list the registered scenarios as an aligned table or JSON.

    rvqvae-bench scenarios [--json] [--file SCENARIOS.toml ...] [--grep TEXT]

``--file`` registers the scenarios of a TOML file first (``bench.scenarios.load_scenario_file``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="TOML",
        help="also register the scenarios of this TOML file (repeatable)",
    )
    parser.add_argument("--grep", default="", metavar="TEXT", help="only names containing TEXT")


def run(args: argparse.Namespace) -> int:
    from bench.scenarios import SCENARIOS, load_scenario_file

    for path in args.file:
        load_scenario_file(path)
    entries = [e for e in SCENARIOS.entries() if args.grep in e.name]
    if args.json:
        rows = [
            dict(
                dataclasses.asdict(e.obj),
                n_inliers=e.obj.n_inliers,
                n_outliers=e.obj.n_outliers,
                outlier_kind=e.obj.outlier_kind,
                description=e.description,
            )
            for e in entries
        ]
        print(json.dumps(rows, indent=2))
        return 0
    header = ("name", "inlier", "outlier", "epsilon", "train size", "inliers", "outliers")
    table = [header] + [_row(e.obj) for e in entries]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    numeric = {3, 4, 5, 6}
    for row in table:
        cells = [
            cell.rjust(w) if i in numeric else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())
    return 0


def _row(scenario) -> tuple[str, ...]:
    return (
        scenario.name,
        _with_classes(scenario.inlier, scenario.inlier_classes),
        _with_classes(scenario.outlier_dataset or scenario.outlier, scenario.outlier_classes),
        f"{scenario.epsilon:g}",
        str(scenario.train_size),
        str(scenario.n_inliers),
        str(scenario.n_outliers),
    )


def _with_classes(name: str, classes: tuple[int, ...] | None) -> str:
    """``mnist``, ``mnist[0]``, ``mnist[1-9]``, ``mnist[1,3-5]``."""
    if classes is None:
        return name
    runs: list[list[int]] = []
    for c in sorted(classes):
        if runs and c == runs[-1][-1] + 1:
            runs[-1].append(c)
        else:
            runs.append([c])
    text = ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
    return f"{name}[{text}]"
