"""``rvqvae-bench compare``: direction-aware regression gate on synthetic runs."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from bench.cli import main
from bench.compare import (
    DEFAULT_TOLERANCES,
    Tolerance,
    Tolerances,
    compare,
    exit_status,
    load_cells,
    load_tolerances,
)
from bench.records import load_records
from bench.report import write_report
from bench.report.synthetic import cell_id, synthetic_mean, write_synthetic_run
from rvqvae.errors import UserError

MODELS = ("vqvae", "rvqvae")


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory):
    return write_synthetic_run(tmp_path_factory.mktemp("baseline"), cell_files=False,
                               models=MODELS)


@pytest.fixture(scope="module")
def baseline_csv(baseline_run):
    """The compact committed-baseline format: report's aggregate.csv."""
    return write_report(baseline_run, figures=False) / "aggregate.csv"


@pytest.fixture
def candidate(tmp_path, baseline_run):
    """A fresh copy of the baseline run to inject changes into."""
    run = tmp_path / "candidate"
    shutil.copytree(baseline_run / "cells", run / "cells")
    return run


def _edit(run, epsilon, model, metric, change):
    """Apply ``change(record)`` to every seed's ``metric`` record of one scenario/model."""
    for seed in (0, 1, 2):
        path = run / "cells" / f"{cell_id(epsilon, model, seed)}.json"
        records = json.loads(path.read_text())
        for record in records:
            if record["metric"] == metric:
                change(record)
        path.write_text(json.dumps(records))


def _scale(factor):
    def change(record):
        record["value"] *= factor
    return change


def _shift(delta):
    def change(record):
        record["value"] += delta
    return change


def _outcome(result, epsilon, model, metric):
    row = result[(result["scenario"] == f"mnist+fmnist@{epsilon:g}") & (result["model"] == model)
                 & (result["metric"] == metric)]
    assert len(row) == 1
    return row.iloc[0]


def _compare(baseline_csv, candidate, tolerances=None):
    return compare(load_cells(baseline_csv), load_cells(candidate),
                   tolerances or load_tolerances(DEFAULT_TOLERANCES))


def test_identical_runs_are_unchanged_in_every_baseline_format(baseline_run, baseline_csv,
                                                               tmp_path):
    records = pd.DataFrame(load_records(baseline_run))
    records.to_csv(tmp_path / "records.csv", index=False)
    (tmp_path / "records.json").write_text(json.dumps(load_records(baseline_run)))
    for source in (baseline_csv, baseline_csv.parent, baseline_run, tmp_path / "records.csv",
                   tmp_path / "records.json"):
        result = compare(load_cells(source), load_cells(baseline_run), Tolerances(Tolerance()))
        assert set(result["outcome"]) == {"unchanged"}, source
        assert len(result) == 3 * len(MODELS) * 8 and exit_status(result) == 0


@pytest.mark.parametrize("metric, change, expected", [
    ("fid_domain_2k", _scale(1.20), "regressed"),           # lower is better, went up 20%
    ("fid_domain_2k", _scale(0.80), "improved"),
    ("fid_domain_2k", _scale(1.05), "unchanged"),            # within rel 0.10
    ("auroc_transductive_split", _shift(-0.05), "regressed"),  # higher is better, went down
    ("auroc_transductive_split", _shift(+0.05), "improved"),
    ("auroc_transductive_split", _shift(-0.015), "unchanged"),  # within abs 0.02
    ("fpr95_transductive_split", _shift(+0.10), "regressed"),  # lower is better
])
def test_changes_are_judged_in_the_metric_direction(baseline_csv, candidate, metric, change,
                                                    expected):
    _edit(candidate, 0.2, "rvqvae", metric, change)
    result = _compare(baseline_csv, candidate)
    row = _outcome(result, 0.2, "rvqvae", metric)
    assert row.outcome == expected
    assert row.baseline == pytest.approx(synthetic_mean(metric, 0.2, "rvqvae"))
    assert row.change == pytest.approx(row.candidate - row.baseline)
    assert (result["outcome"] != "unchanged").sum() == (expected != "unchanged")
    assert exit_status(result) == (expected == "regressed")


def test_tolerance_is_the_largest_of_abs_rel_and_std():
    tolerance = Tolerance(abs=0.02, rel=0.1, std=2.0)
    assert tolerance.allowed(0.1, 0.001) == pytest.approx(0.02)
    assert tolerance.allowed(-5.0, 0.1) == pytest.approx(0.5)
    assert tolerance.allowed(1.0, 0.3) == pytest.approx(0.6)
    assert tolerance.allowed(1.0, float("nan")) == pytest.approx(0.1)


def test_first_matching_pattern_wins_and_replaces_the_default(tmp_path):
    path = tmp_path / "tol.toml"
    path.write_text('[default]\nrel = 0.3\n[metrics]\n"fid_domain_*" = { abs = 1.5 }\n'
                    '"fid_*" = { rel = 0.5 }\n')
    tolerances = load_tolerances(path)
    assert tolerances.for_metric("fid_domain_2k") == Tolerance(abs=1.5)
    assert tolerances.for_metric("fid_inception_10k") == Tolerance(rel=0.5)
    assert tolerances.for_metric("perplexity") == Tolerance(rel=0.3)


def test_a_looser_tolerance_file_turns_a_regression_into_unchanged(baseline_csv, candidate,
                                                                   tmp_path):
    _edit(candidate, 0.4, "vqvae", "fid_domain_2k", _scale(1.20))
    loose = tmp_path / "loose.toml"
    loose.write_text('[metrics]\n"fid_*" = { rel = 0.25 }\n')
    assert main(["compare", str(baseline_csv), str(candidate)]) == 1
    assert main(["compare", str(baseline_csv), str(candidate), "--tolerance", str(loose)]) == 0


def test_missing_metric_and_new_metric(baseline_csv, candidate):
    def rename(record):
        record["metric"] = "auroc_inductive_knn"

    _edit(candidate, 0.2, "vqvae", "auroc_inductive_recon", rename)
    result = _compare(baseline_csv, candidate)
    assert _outcome(result, 0.2, "vqvae", "auroc_inductive_recon").outcome == "missing"
    assert _outcome(result, 0.2, "vqvae", "auroc_inductive_knn").outcome == "new"
    assert exit_status(result) == 1


def test_only_new_metrics_pass(baseline_csv, candidate):
    path = candidate / "cells" / f"{cell_id(0.2, 'vqvae', 0)}.json"
    records = json.loads(path.read_text())
    path.write_text(json.dumps(records + [{**records[0], "metric": "perplexity_top"}]))
    result = _compare(baseline_csv, candidate)
    assert _outcome(result, 0.2, "vqvae", "perplexity_top").outcome == "new"
    assert exit_status(result) == 0


def test_a_failed_candidate_seed_is_a_regression(baseline_csv, tmp_path):
    run = write_synthetic_run(tmp_path / "run", cell_files=False, models=MODELS,
                              failed=[(0.4, "rvqvae", 1)])
    result = _compare(baseline_csv, run)
    failed = result[result["outcome"] == "regressed"]
    assert set(failed["model"]) == {"rvqvae"} and set(failed["scenario"]) == {"mnist+fmnist@0.4"}
    assert len(failed) == 8  # every metric of the cell
    assert failed["note"].str.startswith("1 seed(s) failed: RuntimeError: loss became NaN").all()


def test_protocol_mismatch_is_reported_not_compared(baseline_csv, candidate):
    def more_samples(record):
        record["protocol"] = json.dumps({**json.loads(record["protocol"]), "n_samples": 10000})

    _edit(candidate, 0, "vqvae", "kid_domain_2k", more_samples)
    result = _compare(baseline_csv, candidate)
    row = _outcome(result, 0, "vqvae", "kid_domain_2k")
    assert row.outcome == "protocol"
    assert row.note == "baseline vs candidate: n_samples: 2000 vs 10000"
    assert exit_status(result) == 1


def test_an_undefined_value_that_becomes_defined_is_flagged(baseline_csv, candidate):
    def define(record):
        record.update(status="ok", value=0.5, error=None)

    _edit(candidate, 0, "rvqvae", "auroc_transductive_split", define)
    row = _outcome(_compare(baseline_csv, candidate), 0, "rvqvae", "auroc_transductive_split")
    assert (row.outcome, row.note) == ("regressed", "status undefined -> ok")


def test_a_metric_without_direction_regresses_only_beyond_tolerance(tmp_path):
    def frame(value):
        return pd.DataFrame([{"scenario": "s", "model": "m", "metric": "mystery_score",
                              "mean": value, "n": 1}])

    paths = []
    for name, value in (("base", 1.0), ("same", 1.04), ("moved", 0.5)):
        frame(value).to_csv(tmp_path / f"{name}.csv", index=False)
        paths.append(tmp_path / f"{name}.csv")
    base, same, moved = (load_cells(p) for p in paths)
    assert compare(base, same)["outcome"].tolist() == ["unchanged"]
    result = compare(base, moved)
    assert result["outcome"].tolist() == ["regressed"]
    assert "direction unknown" in result["note"].iloc[0]


def test_cli_prints_sections_and_a_verdict(baseline_csv, candidate, capsys):
    _edit(candidate, 0.2, "vqvae", "fid_domain_2k", _scale(1.5))
    _edit(candidate, 0.2, "rvqvae", "auroc_transductive_split", _shift(0.04))
    assert main(["compare", str(baseline_csv), str(candidate)]) == 1
    out = capsys.readouterr().out
    assert out.index("REGRESSED (1)") < out.index("IMPROVED (1)") < out.index("UNCHANGED (46)")
    assert out.rstrip().endswith(
        "0 protocol mismatches, 1 regressed, 0 missing, 1 improved, 0 new, 46 unchanged -> FAIL")
    regressed = out[out.index("REGRESSED"):out.index("IMPROVED")]
    assert "fid_domain_2k ↓" in regressed and "+6.15 (+50.0%)" in regressed


def test_cli_json_output(baseline_csv, candidate, capsys):
    _edit(candidate, 0.4, "rvqvae", "auroc_inductive_recon", _shift(-0.1))
    assert main(["compare", str(baseline_csv), str(candidate), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["exit_status"] == 1 and report["counts"]["regressed"] == 1
    first = report["rows"][0]
    assert (first["outcome"], first["metric"], first["direction"]) == (
        "regressed", "auroc_inductive_recon", "higher")
    assert first["change"] == pytest.approx(-0.1) and first["allowed"] == pytest.approx(0.02)


def test_cli_identical_runs_exit_zero(baseline_csv, baseline_run, capsys):
    assert main(["compare", str(baseline_csv), str(baseline_run), "--hide-unchanged"]) == 0
    out = capsys.readouterr().out
    assert "UNCHANGED" not in out and out.rstrip().endswith("48 unchanged -> OK")


@pytest.mark.parametrize("toml, message", [
    ("[defaults]\nrel = 0.1\n", "unknown table 'defaults'; use [default] and [metrics]"),
    ('[metrics]\n"fid_*" = { relative = 0.1 }\n',
     "metrics.'fid_*' has unknown key 'relative'; use abs, rel or std"),
    ("[default]\nabs = -1\n", "[default] abs must be a number >= 0, got -1"),
    ("[default\n", "is not valid TOML"),
])
def test_bad_tolerance_files_are_user_errors(tmp_path, baseline_csv, capsys, toml, message):
    path = tmp_path / "tol.toml"
    path.write_text(toml)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("*", r"\*")):
        load_tolerances(path)
    assert main(["compare", str(baseline_csv), str(baseline_csv), "--tolerance", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"rvqvae-bench: error: tolerance file {path}")


def test_bad_inputs_are_user_errors(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nope"), str(tmp_path)]) == 2
    assert "nope does not exist" in capsys.readouterr().err
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="has no scenario, model, metric, status column"):
        load_cells(tmp_path / "x.csv")


def test_default_tolerance_file_is_valid_and_covers_every_catalog_family():
    from bench.metrics.catalog import METRIC_FAMILIES, metric_family

    tolerances = load_tolerances(DEFAULT_TOLERANCES)
    assert tolerances.source == str(DEFAULT_TOLERANCES)
    examples = {"fid": "fid_domain_2k", "kid": "kid_inception_10k", "kid_std": "kid_domain_2k_std",
                "outlier_mode_rate": "outlier_mode_rate_2k", "auroc": "auroc_inductive_recon",
                "aupr_out": "aupr_out_transductive_split", "aupr_in": "aupr_in_inductive_recon",
                "fpr95": "fpr95_transductive_split", "recon": "recon_mse_clean_test",
                "perplexity": "perplexity", "train": "train_images_per_s",
                "kernel_rate": "vectors_per_s"}
    # A new family in bench/metrics/catalog.py needs an example here and a tolerance entry.
    assert set(METRIC_FAMILIES.names()) <= set(examples)
    for family, metric in examples.items():
        if family in METRIC_FAMILIES.names():
            assert metric_family(metric) == METRIC_FAMILIES.get(family), metric
        assert tolerances.for_metric(metric) != tolerances.default, metric
