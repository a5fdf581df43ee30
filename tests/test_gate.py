"""The committed CI baseline and the gate's rule on its real spreads over seeds.

The expensive error-rate cases (other CPU, other seeds, injected regressions that need training)
run by bench/studies/gate_error_rates.py; results/gate/error_rates.md quotes their outcome.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.compare import compare, exit_status, load_cells, load_tolerances

BASELINE = Path(__file__).resolve().parent.parent / "results" / "baselines" / "ci.csv"


@pytest.fixture(scope="module")
def baseline() -> pd.DataFrame:
    return load_cells(BASELINE)


def test_the_baseline_holds_five_seeds_of_every_metric_with_pinned_instruments(baseline):
    ok = baseline[baseline["status"] == "ok"]
    assert len(ok) > 100 and set(ok["n"]) == {5} and set(ok["seeds"]) == {"0,1,2,3,4"}
    assert (baseline["n_failed"] == 0).all()
    sources = set()
    for text in baseline["protocol"].dropna():
        protocol = json.loads(text)
        sources |= {protocol[k] for k in ("extractor_source", "classifier_source") if k in protocol}
    assert sources == {"pinned-v1:mnist+fmnist"}
    assert baseline["device"].str.startswith("cpu (").all()


def test_the_baseline_passes_against_itself(baseline):
    assert exit_status(compare(baseline, baseline, load_tolerances())) == 0


def _shifted(baseline, model, metric, factor):
    """The baseline with one model's metric mean scaled, as a 3-seed candidate would show it."""
    candidate = baseline.copy()
    rows = (candidate["model"] == model) & (candidate["metric"] == metric)
    candidate.loc[rows, "mean"] *= factor
    candidate["n"] = 3
    return candidate, rows


# At level 0.001 with 5 baseline and 3 candidate seeds a mean must move by ~5 baseline standard
# deviations: the gate trades power for no false alarms on another CPU. These sizes stand out at
# eps = 0.3 (recon MSE 0.0127 +- 0.0015, domain FID 263 +- 30 over the five baseline seeds).
@pytest.mark.parametrize("model, metric, factor", [
    ("vqvae", "recon_mse_clean_test", 2.0),         # a worse autoencoder
    ("vqvae", "fid_domain_500", 2.0),               # samples further from the clean inliers
    ("vqvae", "perplexity", 0.4),                   # less than half the codebook usage
])
def test_regressions_of_this_size_stand_out_from_the_real_spread(baseline, model, metric, factor):
    candidate, rows = _shifted(baseline, model, metric, factor)
    result = compare(baseline, candidate, load_tolerances())
    regressed = result[result["outcome"] == "regressed"]
    assert exit_status(result) == 1
    assert set(regressed["metric"]) == {metric} and set(regressed["model"]) == {model}
    assert "mnist+fmnist@0.3" in set(regressed["scenario"])


def test_small_moves_within_the_floor_pass(baseline):
    candidate, _ = _shifted(baseline, "vqvae", "recon_mse_clean_test", 1.01)
    assert exit_status(compare(baseline, candidate, load_tolerances())) == 0
