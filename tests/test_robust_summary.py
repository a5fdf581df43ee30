"""The robust study's per-cell summary (bench.studies.robust_summary) on hand-made records."""

from __future__ import annotations

import pandas as pd

from bench.studies.robust_summary import markdown, summary_table


def _records():
    rows = []
    for scenario, splits in (("a@0.2", (0.9, 0.95, 0.85)), ("b@0.4", (0.9, 0.3, 0.8))):
        for seed, split in enumerate(splits):
            rows.append({"scenario": scenario, "model": "rvqvae", "seed": seed, "status": "ok",
                         "metric": "auroc_transductive_split", "value": split})
            rows.append({"scenario": scenario, "model": "vqvae", "seed": seed, "status": "ok",
                         "metric": "degenerate", "value": float(scenario == "b@0.4" and seed == 2)})
    return pd.DataFrame(rows)


def _claims(verdict_a, verdict_b):
    return pd.DataFrame([
        {"scenario": s, "model": "rvqvae", "metric": "outlier_mode_rate_500", "direction": "lower",
         "mean_diff": -0.1, "ci_low": -0.2, "ci_high": -0.05, "n_pairs": 6, "wins": 6,
         "losses": 0, "verdict": v} for s, v in (("a@0.2", verdict_a), ("b@0.4", verdict_b))])


def test_the_summary_counts_the_issue_bar_cell_by_cell():
    table = summary_table(_records(), _claims("better", "no difference shown"),
                          _claims("better", "better"))
    assert table["split AUROC min"].round(2).tolist() == [0.85, 0.3]
    assert table["degenerate"].tolist() == ["none", "vqvae s2"]
    assert table.loc[0, "outlier-mode vs vqvae"] == "-0.1 [-0.2, -0.05], 6/6 better: **better**"
    assert table.loc[0, "FID vs vqvae"] == "–"  # no such claim
    text = markdown(table)
    assert "correct split in every seed (final split AUROC >= 0.8): 1 of 2" in text
    assert "outlier-mode rate is **better** than VQ-VAE's (claims rule): 1 of 2" in text
