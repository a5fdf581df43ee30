"""Cell cost of several codes or recipes measured in one run: per-cell times and the medians.

    python -m bench.studies.cell_times old=RUN new=RUN [fast=RUN ...] [--out DIR]

Each ``ARM=RUN`` is a run folder (or records archive) of the same cells computed by one arm
(another commit, another recipe), on the same machine, back to back. Writes ``cell_times.csv``
(one row per arm and cell: wall seconds and each recorded phase's seconds, with the arm's
commit and device) and ``cell_times.md``: per arm, its cells, the median cell wall time and its
ratio to the first arm's, and the median of each phase. A phase an arm's code did not record
(before per-phase timing) is left empty.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from bench.cache import atomic_write_text
from bench.report.tables import frame_markdown
from bench.studies import print_and_write
from rvqvae.errors import UserError

PHASES = ("seconds_fit", "seconds_prior", "seconds_sampling", "seconds_metrics_generation",
          "seconds_metrics_detection")


def cell_table(arms: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per arm and cell: ``arm, cell_id, scenario, model, seed, wall_s``, the phases'
    seconds, ``git_sha`` and ``device``."""
    rows = []
    for arm, records in arms.items():
        for cell, part in records.groupby("cell_id", sort=True):
            first = part.iloc[0]
            seconds = part.set_index("metric")["value"]
            rows.append({"arm": arm, "cell_id": cell, "scenario": first["scenario"],
                         "model": first["model"], "seed": int(first["seed"]),
                         "wall_s": float(first["wall_s"]),
                         **{p: seconds.get(p) for p in PHASES},
                         "git_sha": str(first["git_sha"])[:12], "device": first["device"]})
    return pd.DataFrame(rows)


def summary(cells: pd.DataFrame) -> pd.DataFrame:
    """Per arm (in the given order): cells, median wall seconds, its ratio to the first arm's,
    each phase's median seconds, commit and device."""
    arms = list(dict.fromkeys(cells["arm"]))
    groups = cells.groupby("arm", sort=False)
    reference = groups.get_group(arms[0])["wall_s"].median()
    rows = []
    for arm in arms:
        part = groups.get_group(arm)
        rows.append({"arm": arm, "cells": len(part), "median cell s": part["wall_s"].median(),
                     f"/ {arms[0]}": part["wall_s"].median() / reference,
                     **{p.removeprefix("seconds_"): pd.to_numeric(part[p]).median()
                        for p in PHASES},
                     "commit": ", ".join(sorted(set(part["git_sha"]))),
                     "device": ", ".join(sorted(set(part["device"])))})
    return pd.DataFrame(rows)


def _two_decimals(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.2f}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    import bench

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arms", nargs="+", metavar="ARM=RUN",
                        help="an arm's name and its run folder or records archive")
    parser.add_argument("--out", help="write cell_times.csv and cell_times.md into this folder")
    args = parser.parse_args(argv)
    arms = {}
    for entry in args.arms:
        name, sep, source = entry.partition("=")
        if not sep or not name or not source:
            raise UserError(f"{entry!r} is not ARM=RUN; give e.g. old=runs/old new=runs/new")
        arms[name] = bench.load_results(source)
    cells = cell_table(arms)
    text = frame_markdown(summary(cells), _two_decimals)
    if args.out:
        out = Path(args.out)
        atomic_write_text(out / "cell_times.csv", cells.to_csv(index=False))
        return print_and_write(text + "\n", str(out / "cell_times.md"))
    return print_and_write(text, None)


if __name__ == "__main__":
    raise SystemExit(main())
