"""Apply the rule that picks RVQ-VAE's orientation default to an ``rvqvae-orientation`` run.

    python -m bench.studies.orientation_rule RUN_OR_RECORDS [--out rule.md]

The rule, as committed in ``bench/presets/builtin.py`` (85abdd4) before any cell ran:

Rule that picks RVQ-VAE's orientation default from ``rvqvae-orientation`` (written and committed
before any of its cells ran): for each rule, its worst cell is the lowest, over the 10
development scenarios, of the mean over seeds of the final split's AUROC
(``auroc_transductive_split``); the default is the rule with the highest worst cell; rules
within 0.02 of it tie, and ties go to the lowest mean outlier-mode rate
(``outlier_mode_rate_500``, over every scenario and seed), then to ``spread`` (the default until
then).

Per rule (model label ``rvq-<rule>``): per development scenario the mean over seeds and the
lowest seed of the final split's AUROC (``auroc_transductive_split``); the worst cell (the
lowest scenario mean: the rule's key), the mean outlier-mode rate (the tie-break) and the
decision, as Markdown.
"""

from __future__ import annotations

import argparse

import pandas as pd

from bench.report.tables import frame_markdown, three_decimals
from bench.studies import print_and_write

TIE = 0.02
CURRENT_DEFAULT = "spread"
SPLIT = "auroc_transductive_split"
MODE = "outlier_mode_rate_500"


def rule_table(records: pd.DataFrame) -> pd.DataFrame:
    """One row per orientation rule: its worst cell, its mean outlier-mode rate, and per
    scenario ``mean (lowest seed)`` of the final split AUROC; sorted best first."""
    ok = records[(records["status"] == "ok") & records["model"].str.startswith("rvq-")]
    rows = []
    for model, part in ok.groupby("model", sort=True):
        split = part[part["metric"] == SPLIT].groupby("scenario")["value"]
        means, lows = split.mean(), split.min()
        row = {"rule": model.removeprefix("rvq-"), "worst cell": means.min(),
               "lowest seed": lows.min(),
               "mean outlier-mode rate": part[part["metric"] == MODE]["value"].mean()}
        row.update({scenario: f"{means[scenario]:.2f} ({lows[scenario]:.2f})"
                    for scenario in means.index})
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.sort_values("worst cell", ascending=False, kind="stable").reset_index(drop=True)


def decide(table: pd.DataFrame) -> str:
    """The rule's choice: the highest worst cell; within ``TIE`` of it, the lowest mean
    outlier-mode rate; then the current default."""
    best = table["worst cell"].max()
    tied = table[table["worst cell"] >= best - TIE]
    lowest = tied["mean outlier-mode rate"].min()
    finalists = tied[tied["mean outlier-mode rate"] == lowest]["rule"].tolist()
    return CURRENT_DEFAULT if CURRENT_DEFAULT in finalists else finalists[0]


def _markdown(table: pd.DataFrame) -> str:
    return frame_markdown(table, three_decimals)


def main(argv: list[str] | None = None) -> int:
    import bench

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the rvqvae-orientation run folder or records archive")
    parser.add_argument("--out", help="also write the Markdown here")
    args = parser.parse_args(argv)
    table = rule_table(bench.load_results(args.source))
    text = f"{_markdown(table)}\n\nChosen by the rule: **{decide(table)}**\n"
    return print_and_write(text, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
