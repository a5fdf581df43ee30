"""Paired claims (bench.report.paired): the statistics against scipy, the verdict rules, and the
claims table of a synthetic run in the report."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from synthetic_run import (
    MODELS,
    SEEDS,
    synthetic_cell_id,
    synthetic_mean,
    write_synthetic_run,
)

from bench.cli import main
from bench.records import load_results, make_record
from bench.report import verdict_rule as rule
from bench.report import write_report
from bench.report.paired import (
    CLAIM_COLUMNS,
    SUMMARY_COLUMNS,
    _interval_text,
    agree_text,
    paired_claims,
    paired_difference,
    summary_claims,
)
from rvqvae.errors import UserError

MODEL = [0.52, 0.61, 0.47, 0.70, 0.58, 0.66]
REFERENCE = [0.50, 0.55, 0.49, 0.61, 0.52, 0.60]


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    run = write_synthetic_run(tmp_path_factory.mktemp("paired"), cell_files=False,
                              failed=[(0.4, "nsvae", 2)])
    return load_results(run)


@pytest.fixture(scope="module")
def claims(records):
    return paired_claims(records)


# --- statistics -------------------------------------------------------------------------------

def test_one_claims_statistics_are_the_rules():
    diff = np.subtract(MODEL, REFERENCE)
    result = paired_difference(MODEL, REFERENCE, "higher")
    assert (result["ci_low"], result["ci_high"]) == rule.t_interval(diff)
    assert result["mean_diff"] == pytest.approx(diff.mean())
    assert result["p_value"] == pytest.approx(float(rule.sign_flip_p_values(diff)))
    # diffs 0.02, 0.06, -0.02, 0.09, 0.06, 0.06: |mean| is matched or beaten by 6 of the 64
    # sign patterns (as observed, the -0.02 flipped, the 0.02 and -0.02 swapped; and mirrors)
    assert result["p_value"] == pytest.approx(6 / 64)
    assert (result["wins"], result["ties"], result["losses"]) == (5, 0, 1)
    assert paired_difference(MODEL, REFERENCE, "higher") == result  # reproducible


def test_one_seed_computes_no_interval_and_gives_p_one():
    result = paired_difference([12.0], [15.0], "lower")
    assert math.isnan(result["ci_low"]) and math.isnan(result["ci_high"])
    assert result["p_value"] == 1.0
    assert (result["n_pairs"], result["mean_diff"], result["wins"]) == (1, -3.0, 1)


def test_a_constant_difference_gives_a_zero_width_interval_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shifted = paired_difference([10.4, 11.4, 12.4], [10.0, 11.0, 12.0], "lower")
        same = paired_difference([0.3, 0.5, 0.7], [0.3, 0.5, 0.7], "higher")
    assert shifted["ci_low"] == shifted["ci_high"] == shifted["mean_diff"]
    assert shifted["mean_diff"] == pytest.approx(0.4)
    assert (same["ci_low"], same["ci_high"], same["mean_diff"]) == (0.0, 0.0, 0.0)
    assert (same["wins"], same["ties"], same["losses"]) == (0, 3, 0)
    assert same["p_value"] == 1.0


@pytest.mark.parametrize("direction, record", [("lower", (2, 1, 1)), ("higher", (1, 1, 2))])
def test_wins_ties_losses_follow_the_metric_direction(direction, record):
    result = paired_difference([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 1.0, 5.0], direction)
    assert (result["wins"], result["ties"], result["losses"]) == record  # diffs -1, 0, +2, -1


# --- claims of a run --------------------------------------------------------------------------

def test_claims_of_a_synthetic_run(claims):
    assert list(claims.columns) == list(CLAIM_COLUMNS)
    assert set(claims["reference"]) == {"vqvae"} and "vqvae" not in set(claims["model"])
    assert list(pd.unique(claims["model"])) == list(MODELS[1:])
    # detection is undefined at epsilon = 0 for every model: no rows there
    assert not len(claims[claims["metric"].str.startswith("auroc") & (claims["epsilon"] == 0)])
    row = claims[(claims["model"] == "rvqvae") & (claims["metric"] == "fid_domain_2k")
                 & (claims["epsilon"] == 0.4)].iloc[0]
    expected = synthetic_mean("fid_domain_2k", 0.4, "rvqvae") - synthetic_mean(
        "fid_domain_2k", 0.4, "vqvae")
    assert row["mean_diff"] == pytest.approx(expected)
    assert (row["n_pairs"], row["wins"], row["ties"], row["losses"]) == (3, 3, 0, 0)
    assert row["primary"] and row["p_value"] == 0.25  # 3 of 3 better: the exact test's floor
    # three seeds cannot reach the level, however large the effect: no verdict
    assert row["verdict"] == "too few seeds for a verdict (need ≥ 6)"
    assert set(claims["verdict"]) == {"too few seeds for a verdict (need ≥ 6)"}
    assert claims["p_adjusted"].isna().all()  # nothing in the family
    assert (_interval_text(row), agree_text(row)) == ("−4.7 [−6.4, −3.0]", "3 of 3 better")


def test_a_bound_that_rounds_to_zero_still_shows_its_sign():
    # a real 3-seed case: paired AUROC differences 0.019, -1.8e-7, 4.8e-7 (float32 noise)
    row = {"model": "rvqvae", "reference": "vqvae", "metric": "auroc_inductive_recon",
           "scenario": "mnist+fmnist@0", "epsilon": 0.0, "mean_diff": 0.006331,
           "ci_low": 3.97e-08, "ci_high": 0.018992, "wins": 2, "ties": 0, "losses": 1,
           "n_pairs": 3, "p_adjusted": math.nan, "verdict": "too few seeds for a verdict"}
    assert (_interval_text(row), agree_text(row)) == ("0.006 [4e−08, 0.019]", "2 of 3 better")


def test_a_failed_seed_drops_its_pair(claims):
    nsvae = claims[(claims["model"] == "nsvae") & (claims["epsilon"] == 0.4)]
    assert set(nsvae["n_pairs"]) == {2} and set(nsvae["n_dropped"]) == {1}


def test_a_claim_without_any_pair_says_so_not_too_few_seeds(tmp_path):
    run = write_synthetic_run(tmp_path / "run", cell_files=False,
                              failed=[(0.4, "nsvae", seed) for seed in SEEDS])
    claims = paired_claims(load_results(run))
    nsvae = claims[(claims["model"] == "nsvae") & (claims["epsilon"] == 0.4)]
    assert len(nsvae) and set(nsvae["n_pairs"]) == {0}
    assert set(nsvae["verdict"]) == {"no paired values"}
    others = claims[(claims["model"] != "nsvae") | (claims["epsilon"] != 0.4)]
    assert set(others["verdict"]) == {"too few seeds for a verdict (need ≥ 6)"}


SCENARIOS = ("a+b@0.2", "a+b@0.4")


def _records(values: dict, metric: str = "outlier_mode_rate_500", degenerate=()) -> pd.DataFrame:
    """Records of ``{(scenario, model): [value per seed]}``; ``degenerate``: (scenario, model,
    seed) flagged by the health check."""
    rows = []
    for (scenario, model), per_seed in values.items():
        for seed, value in enumerate(per_seed):
            health = ("degenerate: samples nearly all alike"
                      if (scenario, model, seed) in degenerate else "ok")
            rows.append(make_record(scenario=scenario, model=model, seed=seed, metric=metric,
                                    value=value, status="ok", epsilon=float(scenario[-3:]),
                                    health=health))
    return pd.DataFrame(rows)


def _eight_seeds(shift: float, seed: int = 0) -> list[float]:
    return list(np.random.default_rng(seed).normal(0.3, 0.02, 8) + shift)


def test_eight_consistent_seeds_give_a_verdict_and_the_family_adjusts_it():
    values = {(s, m): _eight_seeds(-0.1 if m == "rvqvae" else 0.0, seed=i)
              for i, s in enumerate(SCENARIOS) for m in ("vqvae", "rvqvae")}
    claims = paired_claims(_records(values))
    assert list(claims["verdict"]) == ["better", "better"]
    assert list(claims["p_value"]) == pytest.approx([2 / 256] * 2)
    assert list(claims["p_adjusted"]) == pytest.approx([2 / 256] * 2)  # BH: both smallest
    assert list(claims.apply(agree_text, axis=1)) == ["8 of 8 better"] * 2
    # the same effect as a secondary metric: effect and p, no verdict
    secondary = paired_claims(_records(values, metric="aupr_in_transductive_recon"))
    assert set(secondary["verdict"]) == {"secondary metric: no verdict"}
    assert secondary["p_adjusted"].isna().all()
    # chosen as primary by pattern, it is decided
    chosen = paired_claims(_records(values, metric="aupr_in_transductive_recon"),
                           primary=["aupr_*"])
    assert list(chosen["verdict"]) == ["worse", "worse"]  # higher is better for AUPR


def test_a_family_of_many_null_claims_lifts_the_bar_for_a_lone_effect():
    rng = np.random.default_rng(3)
    values = {}
    for i in range(20):
        scenario = f"s{i}+b@0.2"
        values[(scenario, "vqvae")] = list(rng.normal(0, 1, 6))
        values[(scenario, "rvqvae")] = list(rng.normal(0, 1, 6) + (10.0 if i == 0 else 0.0))
    claims = paired_claims(_records(values))
    lone = claims.iloc[0]
    assert lone["p_value"] == pytest.approx(2 / 64) and lone["p_adjusted"] > 0.05
    assert lone["verdict"] == "no difference shown"  # alone it would pass; in the family not


def test_degenerate_seeds_are_counted_in_the_pairs_not_dropped():
    values = {(SCENARIOS[0], "vqvae"): [0.3] * 5 + [1.0],
              (SCENARIOS[0], "rvqvae"): [0.1, 0.12, 0.11, 0.09, 0.1, 1.0]}
    degenerate = [(SCENARIOS[0], "vqvae", 5), (SCENARIOS[0], "rvqvae", 5)]
    row = paired_claims(_records(values, degenerate=degenerate)).iloc[0]
    assert row["n_pairs"] == 6 and row["n_dropped"] == 0
    assert (row["degenerate"], row["degenerate_reference"]) == (1, 1)
    assert (row["wins"], row["ties"], row["losses"]) == (5, 1, 0)


def test_summary_is_one_stratified_test_over_the_scenarios():
    # three seeds per scenario decide nothing alone; four scenarios together do
    values = {}
    for i in range(4):
        scenario = f"s{i}+b@0.4"
        values[(scenario, "vqvae")] = [0.30, 0.32, 0.31]
        values[(scenario, "rvqvae")] = [0.20 + 0.01 * i, 0.25, 0.22]
    records = _records(values)
    claims = paired_claims(records)
    assert set(claims["verdict"]) == {"too few seeds for a verdict (need ≥ 6)"}
    summary = summary_claims(claims, records)
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    row = summary.iloc[0]
    assert (row["n_scenarios"], row["n_pairs"], row["scenarios_better"]) == (4, 12, 4)
    assert row["p_value"] == pytest.approx(2 / 4096) and row["verdict"] == "better"


def test_no_rows_where_the_model_or_the_reference_was_not_run(tmp_path):
    run = write_synthetic_run(tmp_path / "run", cell_files=False, models=("vqvae", "rvqvae"))
    for epsilon, model in ((0.2, "vqvae"), (0.4, "rvqvae")):
        for seed in SEEDS:
            (run / "cells" / f"{synthetic_cell_id(epsilon, model, seed)}.json").unlink()
    claims = paired_claims(load_results(run))
    assert set(claims["scenario"]) == {"mnist+fmnist@0"}


def test_other_reference_and_a_missing_reference(records):
    claims = paired_claims(records, "oracle-vqvae", models=["rvqvae", "vqvae"])
    assert list(pd.unique(claims["model"])) == ["rvqvae", "vqvae"]
    with pytest.raises(UserError, match=r"^reference model 'vae' is not in this run; models "
                                        r"present: vqvae, rvqvae, trimmed-vqvae, nsvae, "
                                        r"oracle-vqvae$"):
        paired_claims(records, "vae")


# --- in the report ----------------------------------------------------------------------------

def test_report_writes_the_claims_table_as_markdown_latex_and_csv(tmp_path, claims):
    run = write_synthetic_run(tmp_path / "run", cell_files=False, failed=[(0.4, "nsvae", 2)])
    out = write_report(run, tmp_path / "out", figures=False)
    written = pd.read_csv(out / "tables" / "claims.csv")
    pd.testing.assert_frame_equal(written, claims.reset_index(drop=True), check_dtype=False)
    markdown = (out / "tables" / "claims.md").read_text()
    too_few = "too few seeds for a verdict (need ≥ 6)"
    assert (f"| mnist+fmnist@0.4 | rvqvae | 3 | −4.7 [−6.4, −3.0] | 0.25 | – | 3 of 3 better | "
            f"0/0 | {too_few} |") in markdown
    assert "| mnist+fmnist@0.4 | nsvae | 2 (+1) | −2.40 [−2.40, −2.40] | 0.5 | – | 2 of 2 better" \
        in markdown
    assert "Benjamini–Hochberg" in markdown and "**Across scenarios**" in markdown
    latex = (out / "tables" / "claims.tex").read_text()
    assert r"\begin{longtable}" in latex and r"\toprule" in latex and r"\bottomrule" in latex
    assert (r"fid\_domain\_2k $\downarrow$ & mnist+fmnist@0.4 & rvqvae & 3 & "
            r"$-$4.7 [$-$6.4, $-$3.0] & 0.25 & – & 3 of 3 better & 0/0 & too few seeds for a "
            r"verdict (need $\geq$ 6) \\") in latex
    summary = pd.read_csv(out / "tables" / "claims_summary.csv")
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    index = (out / "README.md").read_text()
    assert "## Paired claims" in index and markdown in index
    assert "[CSV](tables/claims.csv)" in index


def test_report_reference_option(tmp_path, capsys):
    run = write_synthetic_run(tmp_path / "run", cell_files=False, models=("rvqvae", "nsvae"))
    out = tmp_path / "out"
    assert main(["report", str(run), "--out", str(out), "--no-figures"]) == 0
    assert "No paired claims: the default reference model `vqvae` is not in this run" in (
        out / "README.md").read_text()
    assert not (out / "tables" / "claims.csv").exists()
    assert main(["report", str(run), "--out", str(out), "--no-figures", "--reference", "vqvae"]) \
        == 2
    assert capsys.readouterr().err.strip() == (
        "rvqvae-bench: error: reference model 'vqvae' is not in this run; models present: "
        "rvqvae, nsvae")
    assert main(["report", str(run), "--out", str(out), "--no-figures",
                 "--reference", "nsvae"]) == 0
    assert set(pd.read_csv(out / "tables" / "claims.csv")["model"]) == {"rvqvae"}


def test_a_run_of_the_reference_alone_writes_an_empty_claims_table(tmp_path):
    run = write_synthetic_run(tmp_path / "run", cell_files=False, models=("vqvae",))
    out = write_report(run, tmp_path / "out", figures=False)
    assert pd.read_csv(out / "tables" / "claims.csv").columns.tolist() == list(CLAIM_COLUMNS)
    assert "Nothing to compare" in (out / "tables" / "claims.md").read_text()
    assert (out / "tables" / "claims.tex").read_text().startswith("% Paired claims: Nothing")
