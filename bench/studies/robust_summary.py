"""The robust study's summary, per cell (scenario at one ε): RVQ-VAE's final split AUROC over
seeds, the outlier-mode rate and FID verdicts of RVQ-VAE against VQ-VAE and against the
trimmed-loss VQ-VAE (from the claims of the study's reports: paired by seed, the claims rule),
and the degenerate cells of every model.

    python -m bench.studies.robust_summary RECORDS CLAIMS_VS_VQVAE CLAIMS_VS_TRIMMED [--out MD]

``RECORDS``: the study's run folder or records archive; the claims: ``tables/claims.csv`` of
``rvqvae-bench report`` with ``--reference vqvae`` and with ``--reference trimmed-vqvae``.
The issue's bar is printed with the table: a correct split (final split AUROC >= 0.8 in every
seed) and an outlier-mode rate "better" than VQ-VAE's, cell by cell.
"""

from __future__ import annotations

import argparse

import pandas as pd

from bench.report.tables import frame_markdown
from bench.studies import print_and_write

SPLIT = "auroc_transductive_split"
MODE = "outlier_mode_rate_500"
FID = "fid_domain_500"
SPLIT_BAR = 0.8


def summary_table(records: pd.DataFrame, versus_vqvae: pd.DataFrame,
                  versus_trimmed: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (scenario), in the records' order."""
    ok = records[records["status"] == "ok"]
    rows = []
    for scenario in pd.unique(records["scenario"]):
        cell = ok[ok["scenario"] == scenario]
        split = cell[(cell["model"] == "rvqvae") & (cell["metric"] == SPLIT)]["value"]
        degenerate = records[(records["scenario"] == scenario) & (records["metric"] == "degenerate")
                             & (records["value"] == 1.0)]
        row = {"cell": scenario, "seeds": int(split.size),
               "split AUROC min": split.min(), "split AUROC mean": split.mean(),
               "degenerate": ", ".join(sorted(f"{m} s{s}" for m, s in
                                              zip(degenerate["model"], degenerate["seed"],
                                                  strict=True))) or "none"}
        for label, claims in (("vs vqvae", versus_vqvae), ("vs trimmed", versus_trimmed)):
            for metric, short in ((MODE, "outlier-mode"), (FID, "FID")):
                row[f"{short} {label}"] = _claim(claims, scenario, metric)
        rows.append(row)
    return pd.DataFrame(rows)


def _claim(claims: pd.DataFrame, scenario: str, metric: str) -> str:
    match = claims[(claims["scenario"] == scenario) & (claims["model"] == "rvqvae")
                   & (claims["metric"] == metric)]
    if match.empty:
        return "–"
    row = match.iloc[0]
    n = int(row["n_pairs"])
    agree = (f"{int(row['wins'])}/{n} better" if row["mean_diff"] * _sign(row) >= 0
             else f"{int(row['losses'])}/{n} worse")
    return (f"{row['mean_diff']:+.3g} [{row['ci_low']:+.3g}, {row['ci_high']:+.3g}], {agree}: "
            f"**{row['verdict']}**")


def _sign(row) -> int:
    return 1 if row["direction"] == "higher" else -1


def bar_lines(table: pd.DataFrame) -> list[str]:
    """How many cells meet each part of the issue's bar."""
    split_ok = int((table["split AUROC min"] >= SPLIT_BAR).sum())
    better = int(table["outlier-mode vs vqvae"].str.endswith("**better**").sum())
    return [f"- cells with a correct split in every seed (final split AUROC >= {SPLIT_BAR}): "
            f"{split_ok} of {len(table)}",
            f"- cells where RVQ-VAE's outlier-mode rate is **better** than VQ-VAE's (claims "
            f"rule): {better} of {len(table)}"]


def markdown(table: pd.DataFrame) -> str:
    shown = table.copy()
    for column in ("split AUROC min", "split AUROC mean"):
        shown[column] = shown[column].map(lambda v: f"{v:.2f}")
    return "\n".join([frame_markdown(shown), "", *bar_lines(table), ""])


def main(argv: list[str] | None = None) -> int:
    import bench

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", help="the study's run folder or records archive")
    parser.add_argument("versus_vqvae", help="claims.csv of the report with --reference vqvae")
    parser.add_argument("versus_trimmed",
                        help="claims.csv of the report with --reference trimmed-vqvae")
    parser.add_argument("--out", help="also write the Markdown here")
    args = parser.parse_args(argv)
    table = summary_table(bench.load_results(args.records), pd.read_csv(args.versus_vqvae),
                          pd.read_csv(args.versus_trimmed))
    text = markdown(table)
    return print_and_write(text, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
