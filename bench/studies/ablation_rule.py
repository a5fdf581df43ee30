"""Apply the rule that picked RVQ-VAE's default to an ``rvqvae-ablation`` run and print the
table it decides by, as Markdown.

    python -m bench.studies.ablation_rule runs/rvqvae-ablation [--out rule.md]

The rule, as written in ``bench/presets/builtin.py`` before the ablation or the held-out study
ran:

Rule that picks RVQ-VAE's default from ``rvqvae-ablation`` (written before the ablation or the
held-out study was run): among the eligible variants (every variant except ``rvq-eps-otsu``,
which changes the protocol, not the model), the default is the one with the lowest worst-seed
outlier-mode rate (``outlier_mode_rate_500``, the maximum over seeds and over epsilon in
{0.3, 0.4, 0.5}); variants within 0.01 of that lowest value tie, and ties go to the highest
mean final split AUROC (``auroc_transductive_split``, the mean over seeds and all five epsilon),
then to the current default ``rvqvae``.

Per variant: the worst-seed outlier-mode rate over epsilon in {0.3, 0.4, 0.5} (the rule's key),
the mean final split AUROC (``auroc_transductive_split``, all epsilon; the tie-break), and, for
reading, the per-epsilon mean ± std of the outlier-mode rate and the lowest final split AUROC
of the fit history (``split_auroc`` of the last epoch) over seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

import bench
from bench.report.tables import frame_markdown, three_decimals

RULE_EPSILONS = (0.3, 0.4, 0.5)
TIE = 0.01
NOT_ELIGIBLE = ("vqvae", "rvq-eps-otsu")
CURRENT_DEFAULT = "rvqvae"
MODE = "outlier_mode_rate_500"
SPLIT = "auroc_transductive_split"


def history_split_auroc(run: Path) -> pd.DataFrame:
    """The last epoch's ``split_auroc`` of every cell that records one."""
    rows = []
    for cell in sorted((run / "cells").glob("*/history.json")):
        history = json.loads(cell.read_text())
        if history and "split_auroc" in history[-1]:
            scenario, model, seed = cell.parent.name.split("__")
            rows.append({"scenario": scenario, "model": model, "seed": int(seed[1:]),
                         "epsilon": float(scenario.split("@")[1]),
                         "final_split_auroc": history[-1]["split_auroc"]})
    return pd.DataFrame(rows)


def decide(run: Path) -> tuple[str, str]:
    df = bench.load_results(run)
    df = df[df.status == "ok"]
    mode = df[df.metric == MODE]
    split = df[df.metric == SPLIT]
    hist = history_split_auroc(run)
    rows = []
    for model in dict.fromkeys(df.model):
        m = mode[mode.model == model]
        row = {"variant": model,
               "worst-seed mode rate, eps 0.3-0.5":
                   m[m.epsilon.isin(RULE_EPSILONS)].value.max(),
               "mean final split AUROC": split[split.model == model].value.mean()}
        for eps, part in m.groupby("epsilon"):
            row[f"mode rate eps={eps:g}"] = f"{part.value.mean():.3f} ± {part.value.std():.3f}"
        h = hist[hist.model == model] if len(hist) else hist
        if len(h):
            row["min history split AUROC"] = h.final_split_auroc.min()
            row["seeds"] = ",".join(str(s) for s in sorted(set(h.seed)))
        rows.append(row)
    table = pd.DataFrame(rows)
    rates = sorted((c for c in table.columns if c.startswith("mode rate eps=")),
                   key=lambda c: float(c.split("=")[1]))
    table = table[[c for c in table.columns if c not in rates] + rates]
    key = "worst-seed mode rate, eps 0.3-0.5"
    eligible = table[~table.variant.isin(NOT_ELIGIBLE)]
    best = eligible[key].min()
    tied = eligible[eligible[key] <= best + TIE]
    top = tied["mean final split AUROC"].max()
    winners = tied[tied["mean final split AUROC"] == top].variant.tolist()
    if not winners:
        return "", _markdown(table) + "\n\nNo eligible variant has the rule's values yet.\n"
    choice = CURRENT_DEFAULT if CURRENT_DEFAULT in winners else winners[0]
    text = (_markdown(table) + "\n\n"
            f"Lowest worst-seed mode rate {best:.3f}; tied within {TIE}: "
            f"{', '.join(tied.variant)}; highest mean final split AUROC among them: "
            f"{', '.join(winners)} ({top:.3f}). Default by the rule: **{choice}**.\n")
    return choice, text


def _markdown(table: pd.DataFrame) -> str:
    return frame_markdown(table, three_decimals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    _, text = decide(args.run)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
