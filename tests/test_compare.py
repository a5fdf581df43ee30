"""``rvqvae-bench compare``: direction-aware regression gate on synthetic runs."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from synthetic_run import synthetic_cell_id, synthetic_mean, write_synthetic_run

from bench.cli import main
from bench.compare import (
    DEFAULT_TOLERANCES,
    Tolerance,
    Tolerances,
    allowance,
    compare,
    exit_status,
    load_cells,
    load_tolerances,
    machine_notes,
    pool_over_scenarios,
)
from bench.records import load_records
from bench.report import write_report
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
        path = run / "cells" / f"{synthetic_cell_id(epsilon, model, seed)}.json"
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


# The synthetic run has 3 seeds per cell (FID std 0.4 around ~10, AUROC std 0.01): with a
# 3-seed baseline (df = 2) at level 0.001 a mean must move by t = 22.3 standard errors
# (se = std * sqrt(2/3)) before it counts: FID by 7.3, AUROC by 0.18.
@pytest.mark.parametrize("metric, change, expected", [
    ("fid_domain_2k", _scale(1.80), "regressed"),           # lower is better, went up 80%
    ("fid_domain_2k", _scale(0.20), "improved"),
    ("fid_domain_2k", _scale(1.50), "unchanged"),            # within the spread over 3 seeds
    ("fid_domain_2k", _scale(1.04), "unchanged"),            # within the rel 0.05 floor
    ("auroc_transductive_split", _shift(-0.25), "regressed"),  # higher is better, went down
    ("auroc_transductive_split", _shift(+0.25), "improved"),
    ("auroc_transductive_split", _shift(-0.15), "unchanged"),  # < 22.3 x se = 0.182
    ("fpr95_transductive_split", _shift(+0.30), "regressed"),  # lower is better
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


def test_the_allowance_is_the_baselines_prediction_interval():
    tolerance = Tolerance(level=0.01)
    judged = allowance(tolerance, change=0.5, baseline=(10.0, 0.3, 5), candidate=(5.0, 3))
    se = 0.3 * math.sqrt(1 / 5 + 1 / 3)  # the candidate's own (wide) spread is not used
    assert judged.rule == "prediction"
    assert judged.allowed == pytest.approx(stats.t.ppf(0.99, 4) * se)
    assert judged.p_value == pytest.approx(stats.t.sf(0.5 / se, 4))
    at_edge = allowance(tolerance, change=judged.allowed, baseline=(10.0, 0.3, 5),
                        candidate=(5.0, 3))
    assert at_edge.p_value == pytest.approx(0.01)


def test_the_false_alarm_rate_is_the_stated_level():
    """Unchanged code = candidate seeds from the baseline's distribution: flagged ~level often."""
    rng = np.random.default_rng(0)
    tolerance, trials, alarms = Tolerance(level=0.05), 4000, 0
    for _ in range(trials):
        base, cand = rng.normal(3.0, 0.7, 5), rng.normal(3.0, 0.7, 3)
        judged = allowance(tolerance, cand.mean() - base.mean(),
                           (base.mean(), base.std(ddof=1), 5), (cand.std(ddof=1), 3))
        alarms += cand.mean() - base.mean() > judged.allowed  # one side: the bad direction
    assert alarms / trials == pytest.approx(0.05, abs=0.01)


def _pooled_trial(rng, shift, level):
    """Two scenarios, 5 baseline and 3 candidate seeds each, the candidate worse by ``shift``
    baseline stds (lower is better): (flagged per scenario, flagged when pooled)."""
    rows, single = [], False
    for _ in range(2):  # two scenarios
        base, cand = rng.normal(3.0, 0.7, 5), rng.normal(3.0 + shift * 0.7, 0.7, 3)
        change = cand.mean() - base.mean()
        judged = allowance(Tolerance(level=level), change, (base.mean(), base.std(ddof=1), 5),
                           (cand.std(ddof=1), 3))
        single |= change > judged.allowed
        worse = change > 0
        rows.append({"model": "m", "metric": "fid_domain_500", "note": "",
                     "outcome": "regressed" if change > judged.allowed else "unchanged",
                     "_p_worse": judged.p_value if worse else 1 - judged.p_value,
                     "_beyond_floor": worse})
    pool_rows = [dict(row) for row in rows]
    pool_over_scenarios(pool_rows, Tolerances(default=Tolerance(level=level)))
    return single, single or any(r["outcome"] == "regressed" for r in pool_rows)


def test_pooling_scenarios_keeps_its_false_alarm_rate_and_adds_power():
    """Fisher's combination of the scenarios' one-sided p-values: under "same code" it flags
    at most ~level often on top of the per-scenario rule; a shift of 1.5 stds in both
    scenarios is caught far more often than by either scenario alone."""
    rng = np.random.default_rng(1)
    null = [_pooled_trial(rng, 0.0, 0.05) for _ in range(3000)]
    extra = sum(pooled and not single for single, pooled in null) / len(null)
    assert extra <= 0.05 + 0.01
    shifted = [_pooled_trial(rng, 1.5, 0.01) for _ in range(1000)]
    single = sum(s for s, _ in shifted) / len(shifted)
    pooled = sum(p for _, p in shifted) / len(shifted)
    assert pooled > single + 0.1, (single, pooled)


def test_one_baseline_seed_uses_the_candidates_spread_and_one_seed_each_the_floor():
    tolerance = Tolerance(abs=0.02, level=0.05)
    judged = allowance(tolerance, change=-0.3, baseline=(1.0, math.nan, 1), candidate=(0.1, 4))
    assert judged.rule == "prediction (candidate spread)"
    assert judged.allowed == pytest.approx(stats.t.ppf(0.95, 3) * 0.1 * math.sqrt(1 + 1 / 4))
    floor = allowance(tolerance, change=0.5, baseline=(1.0, math.nan, 1), candidate=(math.nan, 1))
    assert (floor.rule, floor.allowed) == ("floor", 0.02) and math.isnan(floor.p_value)


def test_identical_seeds_leave_only_the_floor():
    judged = allowance(Tolerance(rel=0.05), change=0.0, baseline=(-4.0, 0.0, 3),
                       candidate=(0.0, 3))
    assert judged.allowed == pytest.approx(0.2) and judged.p_value == 1.0
    assert Tolerance(abs=0.02, rel=0.1).floor(-5.0) == pytest.approx(0.5)


def test_first_matching_pattern_wins_and_replaces_the_default(tmp_path):
    path = tmp_path / "tol.toml"
    path.write_text('[default]\nrel = 0.3\n[metrics]\n"fid_domain_*" = { abs = 1.5 }\n'
                    '"fid_*" = { rel = 0.5 }\n')
    tolerances = load_tolerances(path)
    assert tolerances.for_metric("fid_domain_2k") == Tolerance(abs=1.5)
    assert tolerances.for_metric("fid_inception_10k") == Tolerance(rel=0.5)
    assert tolerances.for_metric("perplexity") == Tolerance(rel=0.05)  # its catalog floor
    assert tolerances.for_metric("my_new_score") == Tolerance(rel=0.3)  # unknown: the default
    path.write_text('[gate]\nlevel = 0.01\n[metrics]\n"fid_*" = { rel = 0.5, level = 0.2 }\n')
    tolerances = load_tolerances(path)
    assert tolerances.for_metric("fid_x_1k") == Tolerance(rel=0.5, level=0.2)
    assert tolerances.for_metric("auroc_inductive_kl") == Tolerance(abs=0.01, level=0.01)


def test_a_looser_tolerance_file_turns_a_regression_into_unchanged(baseline_csv, candidate,
                                                                   tmp_path):
    _edit(candidate, 0.4, "vqvae", "fid_domain_2k", _scale(1.80))
    loose = tmp_path / "loose.toml"
    loose.write_text('[metrics]\n"fid_*" = { rel = 0.85 }\n')
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
    path = candidate / "cells" / f"{synthetic_cell_id(0.2, 'vqvae', 0)}.json"
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
    _edit(candidate, 0.2, "vqvae", "fid_domain_2k", _scale(2.0))
    _edit(candidate, 0.2, "rvqvae", "auroc_transductive_split", _shift(0.25))
    assert main(["compare", str(baseline_csv), str(candidate)]) == 1
    out = capsys.readouterr().out
    assert out.index("REGRESSED (1)") < out.index("IMPROVED (1)") < out.index("UNCHANGED (46)")
    assert out.rstrip().endswith(
        "0 protocol mismatches, 1 regressed, 0 missing, 1 improved, 0 new, 46 unchanged -> FAIL")
    regressed = out[out.index("REGRESSED"):out.index("IMPROVED")]
    assert "fid_domain_2k ↓" in regressed and "+12.3 (+100.0%)" in regressed


def test_junit_and_markdown_carry_the_same_verdict(baseline_csv, candidate, tmp_path, capsys):
    """``--junit``: valid against the JUnit schema CI systems read, one test case per compared
    cell and metric, a failure exactly for the cells that fail the gate; ``--markdown``: the
    verdict, counts and the failing cell, for a pull-request comment."""
    import xml.etree.ElementTree as ET

    import xmlschema

    _edit(candidate, 0.2, "vqvae", "fid_domain_2k", _scale(2.0))
    junit, markdown = tmp_path / "out" / "gate.xml", tmp_path / "out" / "gate.md"
    assert main(["compare", str(baseline_csv), str(candidate), "--junit", str(junit),
                 "--markdown", str(markdown)]) == 1
    schema = xmlschema.XMLSchema(str(Path(__file__).parent / "data" / "junit.xsd"))
    schema.validate(str(junit))
    root = ET.parse(junit).getroot()
    cases = root.findall("./testsuite/testcase")
    failures = root.findall("./testsuite/testcase/failure")
    assert len(cases) == int(root.get("tests")) == 48
    assert [f.get("type") for f in failures] == ["regressed"] and root.get("failures") == "1"
    assert failures[0].get("message").startswith(
        "regressed: fid_domain_2k of vqvae on mnist+fmnist@0.2: ")
    text = markdown.read_text()
    assert text.startswith("### rvqvae-bench compare: ❌ FAIL")
    assert "1 regressed" in text and "| regressed | mnist+fmnist@0.2 | vqvae | fid_domain_2k |" \
        in text
    capsys.readouterr()
    assert main(["compare", str(baseline_csv), str(baseline_csv), "--junit", str(junit)]) == 0
    assert ET.parse(junit).getroot().get("failures") == "0"


def test_cli_json_output(baseline_csv, candidate, capsys):
    _edit(candidate, 0.4, "rvqvae", "auroc_inductive_recon", _shift(-0.25))
    assert main(["compare", str(baseline_csv), str(candidate), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["exit_status"] == 1 and report["counts"]["regressed"] == 1
    first = report["rows"][0]
    assert (first["outcome"], first["metric"], first["direction"]) == (
        "regressed", "auroc_inductive_recon", "higher")
    se = 0.01 * math.sqrt(2 / 3)  # 3 baseline seeds of std 0.01, 3 candidate seeds: df = 2
    assert first["change"] == pytest.approx(-0.25)
    assert first["allowed"] == pytest.approx(stats.t.ppf(0.999, 2) * se)
    assert "prediction p=" in first["note"]


def test_cli_identical_runs_exit_zero(baseline_csv, baseline_run, capsys):
    assert main(["compare", str(baseline_csv), str(baseline_run), "--hide-unchanged"]) == 0
    out = capsys.readouterr().out
    assert "UNCHANGED" not in out and out.rstrip().endswith("48 unchanged -> OK")


@pytest.mark.parametrize("toml, message", [
    ("[defaults]\nrel = 0.1\n", "unknown table 'defaults'; use [gate], [default] and [metrics]"),
    ('[metrics]\n"fid_*" = { relative = 0.1 }\n',
     "metrics.'fid_*' has unknown key 'relative'; use abs, rel or level"),
    ("[gate]\nlevel = 1.5\n", "[gate] level must be a number in (0, 1), got 1.5"),
    ("[default]\nabs = -1\n", "[default] abs must be a finite number >= 0, got -1"),
    ("[default\n", "is not valid TOML"),
])
def test_bad_tolerance_files_are_user_errors(tmp_path, baseline_csv, capsys, toml, message):
    path = tmp_path / "tol.toml"
    path.write_text(toml)
    with pytest.raises(UserError, match=re.escape(message)):
        load_tolerances(path)
    assert main(["compare", str(baseline_csv), str(baseline_csv), "--tolerance", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"rvqvae-bench: error: tolerance file {path}")


def test_bad_inputs_are_user_errors(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nope"), str(tmp_path)]) == 2
    assert "nope does not exist" in capsys.readouterr().err
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="has no scenario, model, metric, status column"):
        load_cells(tmp_path / "x.csv")


def test_every_catalog_family_has_its_floor_and_the_default_file_only_sets_level_and_default():
    """The floors moved from tolerance-file patterns into the catalog unchanged: these are the
    values the packaged file held before (a change here is a change of the gate)."""
    from bench.metrics.catalog import METRIC_FAMILIES, metric_family

    tolerances = load_tolerances(DEFAULT_TOLERANCES)
    assert tolerances.source == str(DEFAULT_TOLERANCES) and not tolerances.overrides
    assert tolerances.default == Tolerance(rel=0.10)
    floors = {  # family: (example metric, abs, rel)
        "fid": ("fid_domain_2k", 0, 0.05), "kid": ("kid_inception_10k", 0.0002, 0.10),
        "kid_std": ("kid_domain_2k_std", 0.0005, 0.25),
        "outlier_mode_rate": ("outlier_mode_rate_2k", 0.02, 0),
        "auroc": ("auroc_inductive_recon", 0.01, 0), "aupr_out": ("aupr_out_transductive_split",
                                                                 0.02, 0),
        "aupr_in": ("aupr_in_inductive_recon", 0.02, 0),
        "fpr95": ("fpr95_transductive_split", 0.03, 0), "recon": ("recon_mse_clean_test", 0, 0.02),
        "perplexity": ("perplexity", 0, 0.05), "train": ("train_images_per_s", 0, 1.0),
        "kernel_rate": ("vectors_per_s", 0, 1.0), "compile_s": ("compile_s", 3600, 0),
        "kernel_ratio": ("pct_gemm", 0, 0.6), "kernel_agreement": ("agreement", 0.001, 0),
        "degenerate": ("degenerate", 0, 0),  # any newly degenerate seed regresses
        "health_recon": ("health_recon_vs_mean_image", 0, 0.25),
        "health_spread": ("health_sample_spread", 0, 0.25),
        "health_loss": ("health_loss_drop", 0, 0.25), "health_kl": ("health_kl_per_image", 0, 0.5),
        "seconds": ("seconds_metrics_generation", 0, 1000.0),  # informational: never regresses
    }
    assert set(METRIC_FAMILIES.names()) == set(floors)  # a new family needs a line here
    for family, (metric, floor_abs, floor_rel) in floors.items():
        assert metric_family(metric) == METRIC_FAMILIES.get(family), metric
        assert tolerances.for_metric(metric) == Tolerance(abs=floor_abs, rel=floor_rel), metric


def test_a_machine_only_protocol_difference_is_compared_and_noted(baseline_csv, candidate):
    def one_thread(record):
        record["protocol"] = json.dumps({**json.loads(record["protocol"]), "threads": 1})

    def two_threads(record):
        record["protocol"] = json.dumps({**json.loads(record["protocol"]), "threads": 2})

    _edit(candidate, 0.2, "vqvae", "recon_mse_clean_test", one_thread)
    result = _compare(baseline_csv, candidate)  # baseline has no threads key at all
    row = _outcome(result, 0.2, "vqvae", "recon_mse_clean_test")
    assert row.outcome == "unchanged" and "machine: threads: <absent> vs 1" in row.note
    _edit(candidate, 0.2, "vqvae", "recon_mse_clean_test", two_threads)
    row = _outcome(_compare(candidate, candidate), 0.2, "vqvae", "recon_mse_clean_test")
    assert row.outcome == "unchanged"
    assert exit_status(_compare(baseline_csv, candidate)) == 0


def test_machine_notes_name_the_cpu_and_versions_and_never_fail(baseline_csv, candidate, capsys):
    def elsewhere(record):
        record["device"] = "cpu (Other CPU, 1 thread)"
        record["versions"] = json.dumps({**json.loads(record["versions"] or "{}"),
                                         "torch": "9.9.9"})

    for path in (candidate / "cells").glob("*.json"):
        records = json.loads(path.read_text())
        for record in records:
            elsewhere(record)
        path.write_text(json.dumps(records))
    notes = machine_notes(load_cells(baseline_csv), load_cells(candidate))
    assert any(n.startswith("machine differs: ") and n.endswith("vs cpu (Other CPU, 1 thread)")
               for n in notes)
    assert any(n.startswith("versions differ: ") and "vs 9.9.9" in n for n in notes)
    assert main(["compare", str(baseline_csv), str(candidate)]) == 0
    out = capsys.readouterr().out
    assert "note: machine differs: " in out and "(not a failure)" in out


def test_a_truncated_csv_is_one_error_line_and_exit_2(baseline_csv, tmp_path, capsys):
    truncated = tmp_path / "aggregate.csv"
    text = baseline_csv.read_text()
    truncated.write_text(text[: len(text) // 2])
    assert main(["compare", str(truncated), str(baseline_csv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rvqvae-bench: error: {truncated} is not a readable CSV (")
    assert len(err.strip().splitlines()) == 1


# ------------------------------------------------ baselines nobody checked yet (issue #22)

@pytest.mark.parametrize("column, value, message", [
    ("mean", "high", "row 1: mean must be a number, finite where status is ok, got 'high'"),
    ("mean", "inf", "row 1: mean must be a number, finite where status is ok, got inf"),
    ("n", "five", "row 1: n must be an integer >= 0, got 'five'"),
    ("n", "2.5", "row 1: n must be an integer >= 0, got 2.5"),
    ("std", "-1", "row 1: std must be a number >= 0, got -1.0"),
    ("status", "fine", "row 1: status must be one of ok, undefined, failed, got 'fine'"),
])
def test_a_baseline_with_text_for_a_number_is_bad_input_not_a_regression(
        baseline_csv, tmp_path, capsys, column, value, message):
    """A ``mean`` of text was a ValueError traceback and exit 1 (a regression, to CI), and an
    ``n`` of text was read as 0 seeds."""
    frame = pd.read_csv(baseline_csv)
    frame[column] = frame[column].astype(object)
    frame.loc[0, column] = value
    bad = tmp_path / "baseline.csv"
    frame.to_csv(bad, index=False)
    assert main(["compare", str(bad), str(baseline_csv)]) == 2
    assert capsys.readouterr().err == (
        f"rvqvae-bench: error: {bad} {message}; regenerate the file with 'rvqvae-bench report' "
        f"(aggregate.csv) or fix that row\n")


def test_a_tolerance_pattern_that_matches_no_metric_is_refused(baseline_csv, tmp_path, capsys):
    """A typo in a [metrics] pattern disabled nothing and said nothing."""
    path = tmp_path / "tol.toml"
    path.write_text('[metrics]\n"fid_domian_*" = { rel = 0.5 }\n"auroc_*" = { abs = 0.02 }\n')
    assert main(["compare", str(baseline_csv), str(baseline_csv), "--tolerance", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"rvqvae-bench: error: tolerance file {path}: [metrics] pattern(s) 'fid_domian_*' match "
        f"no metric of the compared results (closest: fid_domain_2k, kid_domain_2k); fix or "
        f"remove them\n")


CSV_CELLS = st.one_of(
    st.none(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.text(st.characters(blacklist_categories=("Cs",)), max_size=6),
    st.sampled_from(["ok", "failed", "undefined", "fid_domain_2k", "vqvae", "{}", "[1]"]))
CSV_COLUMNS = ("scenario", "model", "metric", "status", "mean", "std", "n", "n_failed",
               "n_undefined", "direction", "protocol", "note", "seeds", "value", "seed")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(0, 3), st.sampled_from(CSV_COLUMNS), CSV_CELLS),
                      max_size=6),
       raw=st.booleans(), drop=st.sets(st.sampled_from(CSV_COLUMNS), max_size=2))
def test_fuzzed_baseline_csvs_give_a_verdict_or_one_error_line(baseline_csv, tmp_path, capsys,
                                                              edits, raw, drop):
    """Any cell of an aggregate.csv or a raw records CSV replaced by anything (text, huge
    numbers, inf, nan, empty), columns dropped: ``compare`` exits 0 or 1 with its verdict, or
    2 with one ``rvqvae-bench: error:`` line naming the file; never a traceback."""
    frame = pd.read_csv(baseline_csv).head(4)
    if raw:  # the records format: one value per seed
        frame = frame.rename(columns={"mean": "value"}).assign(seed=0)
    frame = frame.astype(object).drop(columns=[c for c in drop if c in frame.columns])
    for row, column, value in edits:
        if column in frame.columns:
            frame.loc[row, column] = value
    path = tmp_path / "fuzzed.csv"
    frame.to_csv(path, index=False)
    status = main(["compare", str(path), str(baseline_csv), "--hide-unchanged"])
    out, err = capsys.readouterr()
    if status == 2:
        assert err.startswith("rvqvae-bench: error: ") and err.count("\n") == 1, err
    else:
        assert status in (0, 1) and out.rstrip().endswith(("-> OK", "-> FAIL")), out
