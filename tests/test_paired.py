"""Paired claims (bench.report.paired): the statistics against scipy, the verdict rules, and the
claims table of a synthetic run in the report."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from synthetic_run import (
    MODELS,
    SEEDS,
    synthetic_cell_id,
    synthetic_mean,
    write_synthetic_run,
)

from bench.cli import main
from bench.records import load_results
from bench.report import write_report
from bench.report.paired import (
    CLAIM_COLUMNS,
    CLAIM_SEED,
    N_RESAMPLES,
    NO_CLAIM,
    NO_DIFFERENCE,
    claim_text,
    paired_claims,
    paired_difference,
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

def test_bootstrap_interval_is_scipys_bca_interval_with_the_claim_seed():
    diff = np.subtract(MODEL, REFERENCE)
    expected = stats.bootstrap((diff,), np.mean, method="BCa", confidence_level=0.95,
                               n_resamples=N_RESAMPLES,
                               random_state=np.random.default_rng(CLAIM_SEED)).confidence_interval
    result = paired_difference(MODEL, REFERENCE, "higher")
    assert (result["ci_low"], result["ci_high"]) == (expected.low, expected.high)
    assert result["mean_diff"] == pytest.approx(diff.mean())
    assert result["ci_low"] < result["mean_diff"] < result["ci_high"]
    assert paired_difference(MODEL, REFERENCE, "higher") == result  # seeded: reproducible
    assert result["verdict"] == "better" and result["ci_low"] > 0


def test_permutation_p_value_is_scipys_and_the_exact_sign_flip_p_value():
    x, y = np.array(MODEL[:5]), np.array([0.50, 0.63, 0.49, 0.61, 0.52])
    expected = stats.permutation_test(
        (x, y), lambda a, b, axis: np.mean(a - b, axis=axis), permutation_type="samples",
        vectorized=True, random_state=np.random.default_rng(CLAIM_SEED)).pvalue
    p_value = paired_difference(x, y, "lower")["p_value"]
    assert p_value == expected
    diff = x - y  # every one of the 2^5 sign flips, two-sided
    flips = [abs(np.mean(diff * signs)) >= abs(diff.mean()) - 1e-12
             for signs in itertools.product((1, -1), repeat=len(diff))]
    assert p_value == pytest.approx(sum(flips) / len(flips))


def test_one_seed_makes_no_claim_and_computes_no_interval():
    result = paired_difference([12.0], [15.0], "lower")
    assert result["verdict"] == NO_CLAIM == "n < 3: no claim"
    assert math.isnan(result["ci_low"]) and math.isnan(result["ci_high"])
    assert math.isnan(result["p_value"])
    assert (result["n_pairs"], result["mean_diff"], result["wins"]) == (1, -3.0, 1)
    assert paired_difference([1.0, 2.0], [3.0, 5.0], "lower")["verdict"] == NO_CLAIM


def test_a_constant_difference_gives_a_zero_width_interval_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's BCa would warn (DegenerateDataWarning) and NaN
        shifted = paired_difference([10.4, 11.4, 12.4], [10.0, 11.0, 12.0], "lower")
        same = paired_difference([0.3, 0.5, 0.7], [0.3, 0.5, 0.7], "higher")
        rounded = paired_difference(0.1 + np.array([0.1, 0.2, 0.3]), [0.1, 0.2, 0.3], "lower")
    assert shifted["ci_low"] == shifted["ci_high"] == shifted["mean_diff"]
    assert shifted["mean_diff"] == pytest.approx(0.4)
    assert shifted["verdict"] == "worse"  # lower is better and the model is higher every seed
    assert (same["ci_low"], same["ci_high"], same["mean_diff"]) == (0.0, 0.0, 0.0)
    assert (same["wins"], same["ties"], same["losses"]) == (0, 3, 0)
    assert same["verdict"] == NO_DIFFERENCE and same["p_value"] == 1.0
    assert np.ptp(0.1 + np.array([0.1, 0.2, 0.3]) - [0.1, 0.2, 0.3]) > 0  # 0.1 +- rounding
    assert rounded["ci_low"] == rounded["ci_high"] == rounded["mean_diff"]
    assert rounded["mean_diff"] == pytest.approx(0.1) and rounded["verdict"] == "worse"


@pytest.mark.parametrize("direction, record", [("lower", (2, 1, 1)), ("higher", (1, 1, 2))])
def test_wins_ties_losses_follow_the_metric_direction(direction, record):
    result = paired_difference([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 1.0, 5.0], direction)
    assert (result["wins"], result["ties"], result["losses"]) == record  # diffs -1, 0, +2, -1


@pytest.mark.parametrize("model, direction, verdict", [
    ([1.5, 2.6, 3.4, 4.7], "higher", "better"),
    ([1.5, 2.6, 3.4, 4.7], "lower", "worse"),
    ([0.5, 1.4, 2.6, 3.3], "lower", "better"),
    ([1.5, 1.6, 3.4, 3.3], "lower", NO_DIFFERENCE),  # diffs +-0.5, +-0.6: the CI holds 0
])
def test_verdict_needs_an_interval_that_excludes_zero(model, direction, verdict):
    result = paired_difference(model, [1.0, 2.0, 3.0, 4.0], direction)
    assert result["verdict"] == verdict
    assert (result["ci_low"] > 0 or result["ci_high"] < 0) == (verdict != NO_DIFFERENCE)


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
    assert row["verdict"] == "better" and row["ci_low"] <= row["mean_diff"] <= row["ci_high"] < 0
    assert claim_text(row) == ("rvqvae vs vqvae, fid_domain_2k, ε = 0.4: −4.7 [−5.5, −4.3], "
                               "3/0/0")


def test_a_bound_that_rounds_to_zero_still_shows_its_sign():
    # a real 3-seed case: paired AUROC differences 0.019, -1.8e-7, 4.8e-7 (float32 noise)
    row = {"model": "rvqvae", "reference": "vqvae", "metric": "auroc_inductive_recon",
           "scenario": "mnist+fmnist@0", "epsilon": 0.0, "mean_diff": 0.006331,
           "ci_low": 3.97e-08, "ci_high": 0.018992, "wins": 2, "ties": 0, "losses": 1}
    assert claim_text(row) == ("rvqvae vs vqvae, auroc_inductive_recon, ε = 0: "
                               "0.006 [4e−08, 0.019], 2/0/1")


def test_higher_is_better_metrics_win_on_positive_differences(claims):
    row = claims[(claims["model"] == "rvqvae") & (claims["metric"] == "auroc_transductive_split")
                 & (claims["epsilon"] == 0.2)].iloc[0]
    assert row["mean_diff"] == pytest.approx(0.25) and row["wins"] == 3
    assert row["verdict"] == "better"


def test_a_failed_seed_drops_its_pair_and_leaves_too_few_for_a_claim(claims):
    nsvae = claims[(claims["model"] == "nsvae") & (claims["epsilon"] == 0.4)]
    assert set(nsvae["n_pairs"]) == {2} and set(nsvae["n_dropped"]) == {1}
    assert set(nsvae["verdict"]) == {NO_CLAIM} and nsvae["ci_low"].isna().all()


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
    assert "| mnist+fmnist@0.4 | rvqvae | 3 | −4.7 [−5.5, −4.3] | 0.25 | 3/0/0 | **better** |" \
        in markdown
    assert "| mnist+fmnist@0.4 | nsvae | 2 (+1) | −2.40 | – | 2/0/0 | n < 3: no claim |" in markdown
    latex = (out / "tables" / "claims.tex").read_text()
    assert r"\begin{longtable}" in latex and r"\toprule" in latex and r"\bottomrule" in latex
    assert (r"fid\_domain\_2k $\downarrow$ & mnist+fmnist@0.4 & rvqvae & 3 & "
            r"$-$4.7 [$-$5.5, $-$4.3] & 0.25 & 3/0/0 & better \\") in latex
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
