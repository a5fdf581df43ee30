"""``rvqvae-bench report`` on a synthetic run with known numbers (bench.report.synthetic)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from synthetic_run import (
    EPSILONS,
    MODELS,
    SEEDS,
    UNDEFINED_REASON,
    synthetic_cell_id,
    synthetic_mean,
    synthetic_spread,
    synthetic_value,
    write_synthetic_run,
)

from bench.cli import main
from bench.records import load_results
from bench.report import REPORT_MARKER, aggregate, build_tables, format_cell, write_report
from rvqvae.errors import UserError

FAILED_SEED = (0.4, "nsvae", 2)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """The full synthetic grid (records only): 3 epsilons x 5 models x 3 seeds, one seed failed."""
    return write_synthetic_run(tmp_path_factory.mktemp("run"), cell_files=False,
                               failed=[FAILED_SEED])


@pytest.fixture(scope="module")
def summary(run_dir):
    return aggregate(load_results(run_dir))


@pytest.fixture(scope="module")
def tables(summary):
    return {table.name: table for table in build_tables(summary)}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The one report with every figure (the slow part), on a smaller grid with cell files."""
    run = write_synthetic_run(tmp_path_factory.mktemp("files"), models=MODELS[:3], seeds=(1, 2))
    return write_report(run)


def _records_run(tmp_path, **kwargs):
    return write_synthetic_run(tmp_path / "run", cell_files=False, **kwargs)


def _edit_cell(run_dir, cid, edit):
    path = run_dir / "cells" / f"{cid}.json"
    path.write_text(json.dumps([edit(r) for r in json.loads(path.read_text())]))


# --- numbers ----------------------------------------------------------------------------------

def test_format_cell_rounds_std_to_two_significant_digits():
    assert format_cell(12.3, 0.4, 3) == "12.30 ± 0.40 (n=3)"
    assert format_cell(0.0123, 0.00045, 3) == "0.01230 ± 0.00045 (n=3)"
    assert format_cell(0.0123, 0.0000999999, 3) == "0.01230 ± 0.00010 (n=3)"
    assert format_cell(12.3, math.nan, 1) == "12.30 (n=1)"
    assert format_cell(1234567.0, 51234.0, 2) == "1234567 ± 51234 (n=2)"


def test_aggregate_matches_the_synthetic_means_and_spreads(summary):
    ok = summary[summary["status"] == "ok"]
    assert len(ok) == len(EPSILONS) * len(MODELS) * 8 - len(MODELS) * 3  # detection at 0: n/a
    for row in ok.itertuples():
        seeds = [s for s in SEEDS if (row.epsilon, row.model, s) != FAILED_SEED]
        values = [synthetic_value(row.metric, row.epsilon, row.model, s) for s in seeds]
        assert (row.n, row.n_failed) == (len(seeds), len(SEEDS) - len(seeds))
        assert row.mean == pytest.approx(np.mean(values), rel=1e-12)
        assert row.std == pytest.approx(np.std(values, ddof=1), rel=1e-9)
        if len(seeds) == len(SEEDS):
            assert row.mean == pytest.approx(synthetic_mean(row.metric, row.epsilon, row.model))
            assert row.std == pytest.approx(synthetic_spread(row.metric))


def test_cell_text_shows_mean_std_and_n(tables):
    text = tables["generation__mnist+fmnist"].text
    assert text.loc["vqvae", ("fid_domain_2k", "0.2")] == "12.30 ± 0.40 (n=3)"
    assert text.loc["nsvae", ("fid_domain_2k", "0.4")] == "12.40 ± 0.28 (n=2)†"


def test_rows_follow_run_order_and_columns_sort_by_epsilon(tables):
    text = tables["generation__mnist+fmnist"].text
    assert list(text.index) == list(MODELS)
    assert [key for metric, key in text.columns if metric == "fid_domain_2k"] == ["0", "0.2", "0.4"]


@pytest.mark.parametrize("table, metric, best", [
    ("generation__mnist+fmnist", "fid_domain_2k", min),
    ("detection__mnist+fmnist", "auroc_transductive_split", max),
    ("detection__mnist+fmnist", "fpr95_transductive_split", min),
])
def test_best_model_per_column_is_bold_in_the_metric_direction(tables, table, metric, best):
    table = tables[table]
    for epsilon in EPSILONS:
        if metric.startswith(("auroc", "fpr95")) and epsilon == 0:
            assert not table.bold[(metric, "0")].any()  # undefined everywhere: nothing bold
            continue
        means = {m: synthetic_mean(metric, epsilon, m) for m in MODELS}
        if (epsilon, "nsvae", 2) == FAILED_SEED:
            means["nsvae"] = synthetic_mean(metric, epsilon, "nsvae") - synthetic_spread(metric) / 2
        expected = best(means, key=means.get)
        column = table.bold[(metric, f"{epsilon:g}")]
        assert list(column[column].index) == [expected], (metric, epsilon)


def test_markdown_and_latex_bold_the_same_cell(tables):
    from bench.report import table_latex, table_markdown

    table = tables["detection__mnist+fmnist"]
    markdown = table_markdown(table)
    row = next(line for line in markdown.splitlines() if line.startswith("| rvqvae |"))
    assert row.split(" | ")[2] == "**0.950 ± 0.010 (n=3)**"  # auroc_transductive_split at 0.2
    latex = table_latex(table)
    assert r"\toprule" in latex and r"\midrule" in latex and r"\bottomrule" in latex
    latex_row = next(line for line in latex.splitlines() if line.startswith("rvqvae &"))
    assert latex_row.split(" & ")[2] == r"\textbf{0.950 $\pm$ 0.010 (n=3)}"
    assert r"auroc\_transductive\_split $\uparrow$" in latex


def test_undefined_cells_read_na_with_the_reason_in_a_note(tables):
    table = tables["detection__mnist+fmnist"]
    assert set(table.text[("auroc_transductive_split", "0")]) == {"n/a"}
    assert (f"n/a in auroc_transductive_split at ε=0 (all models): {UNDEFINED_REASON}"
            in table.notes)


def test_partly_and_wholly_failed_cells(tmp_path):
    run = _records_run(tmp_path, failed=[(0.2, "nsvae", s) for s in SEEDS] + [(0.4, "vqvae", 0)])
    table = {t.name: t for t in build_tables(aggregate(load_results(run)))}[
        "generation__mnist+fmnist"]
    assert table.text.loc["nsvae", ("kid_domain_2k", "0.2")] == "failed"
    assert not table.bold.loc["nsvae"].any()
    assert table.text.loc["vqvae", ("fid_domain_2k", "0.4")].endswith("(n=2)†")
    assert ("failed in fid_domain_2k at ε=0.2 (nsvae): RuntimeError: loss became NaN at epoch 3"
            in table.notes)
    assert ("† in fid_domain_2k at ε=0.4 (vqvae): 1 of 3 seeds failed (RuntimeError: loss became "
            "NaN at epoch 3)" in table.notes)


def test_a_model_not_run_in_a_column_shows_a_dash(tmp_path):
    run = _records_run(tmp_path, models=("vqvae", "rvqvae"))
    for seed in SEEDS:
        (run / "cells" / f"{synthetic_cell_id(0.4, 'rvqvae', seed)}.json").unlink()
    table = build_tables(aggregate(load_results(run)))[0]
    assert table.text.loc["rvqvae", ("fid_domain_2k", "0.4")] == "–"


def test_report_lists_models_in_the_preset_order_of_run_json(tmp_path):
    run = _records_run(tmp_path, models=("vqvae", "rvqvae", "nsvae"))
    info = json.loads((run / "run.json").read_text())
    info["preset"]["models"] = [{"name": "nsvae"}, {"name": "vqvae", "label": ""},
                                {"name": "x", "label": "rvqvae"}]
    (run / "run.json").write_text(json.dumps(info))
    out = write_report(run, tmp_path / "out", figures=False)
    assert list(pd.unique(pd.read_csv(out / "aggregate.csv")["model"])) == [
        "nsvae", "vqvae", "rvqvae"]
    index = (out / "README.md").read_text()
    assert index.index("| nsvae |") < index.index("| vqvae |") < index.index("| rvqvae |")
    assert "- preset: `synthetic` (made-up numbers with known means)" in index
    # the machine, seeds and versions behind the numbers, stated at the top
    assert "\nComputed on `cpu (synthetic, 2 threads)`; seeds 0, 1, 2; torch 2.15.0; git `" in index


# --- refusals ---------------------------------------------------------------------------------

def _with_protocol(record, **changes):
    if record["metric"] == "fid_domain_2k":
        record["protocol"] = json.dumps({**json.loads(record["protocol"]), **changes})
    return record


def test_mixed_protocols_in_one_cell_are_refused_naming_cell_and_key(tmp_path, capsys):
    run = _records_run(tmp_path, models=("vqvae",))
    _edit_cell(run, synthetic_cell_id(0.2, "vqvae", 1),
               lambda r: _with_protocol(r, n_samples=10000))
    with pytest.raises(UserError) as caught:
        aggregate(load_results(run))
    message = str(caught.value)
    assert message.startswith("cell mnist+fmnist@0.2 / vqvae / fid_domain_2k mixes records with "
                              "different protocols (n_samples: 2000 vs 10000; seeds 0,2 vs 1)")
    assert main(["report", str(run), "--no-figures"]) == 2
    assert capsys.readouterr().err.strip() == f"rvqvae-bench: error: {message}"


def test_compare_fails_only_the_cell_whose_seeds_disagree(tmp_path, capsys):
    """The gate keeps going: a candidate cell whose seeds were measured differently (e.g. FID
    against a per-seed training set instead of the fixed clean reference) is that cell's
    protocol mismatch, exit 1, not a refusal of the whole comparison."""
    from bench.compare import compare, exit_status, load_cells

    baseline = _records_run(tmp_path / "base", models=("vqvae",))
    run = _records_run(tmp_path / "cand", models=("vqvae",))
    _edit_cell(run, synthetic_cell_id(0.2, "vqvae", 1),
               lambda r: _with_protocol(r, reference_digest="x"))
    result = compare(load_cells(baseline), load_cells(run))
    flagged = result[result["outcome"] == "protocol"]
    assert exit_status(result) == 1
    assert list(flagged["metric"]) == ["fid_domain_2k"]
    assert list(flagged["scenario"]) == ["mnist+fmnist@0.2"]
    assert flagged["note"].iloc[0].startswith(
        "the candidate's seeds were measured differently: reference_digest:")
    assert main(["compare", str(baseline), str(run), "--hide-unchanged"]) == 1


def test_a_legacy_per_seed_kid_seed_does_not_split_a_cell(tmp_path):
    """Records once carried KID's subset seed (= the cell seed) in their protocol."""
    run = _records_run(tmp_path, models=("vqvae",))
    for seed in (0, 1, 2):
        _edit_cell(run, synthetic_cell_id(0.2, "vqvae", seed),
                   lambda r, s=seed: _with_protocol(r, kid_seed=s))
    table = aggregate(load_results(run))
    fid = table[(table["metric"] == "fid_domain_2k") & (table["scenario"] == "mnist+fmnist@0.2")]
    assert fid["n"].tolist() == [3] and "kid_seed" not in fid["protocol"].iloc[0]


def test_protocol_difference_lists_every_differing_key_and_absent_ones(tmp_path):
    run = _records_run(tmp_path, models=("vqvae",))
    _edit_cell(run, synthetic_cell_id(0, "vqvae", 2),
               lambda r: _with_protocol(r, extractor="inception", metric_code_version=2,
                                        extra=True))
    with pytest.raises(UserError, match=r"\(extra: <absent> vs true; extractor: domain vs "
                                        r"inception; metric_code_version: 1 vs 2; "
                                        r"seeds 0,1 vs 2\)"):
        aggregate(load_results(run))


def test_a_seed_recorded_twice_is_refused(tmp_path):
    run = _records_run(tmp_path, models=("vqvae",))
    source = run / "cells" / f"{synthetic_cell_id(0, 'vqvae', 0)}.json"
    (run / "cells" / "copy-of-seed-0.json").write_text(source.read_text())
    with pytest.raises(UserError, match="vqvae / fid_domain_2k has seed 0 recorded more than once"):
        aggregate(load_results(run))


def test_report_of_a_folder_without_records_is_a_user_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no result records" in capsys.readouterr().err


# --- files ------------------------------------------------------------------------------------

def test_report_writes_tables_csv_figures_and_index(report):
    assert (report / "README.md").is_file() and (report / REPORT_MARKER).is_file()
    for stem in ("generation", "detection", "reconstruction"):
        assert (report / "tables" / f"{stem}__mnist+fmnist.md").stat().st_size > 0
        assert (report / "tables" / f"{stem}__mnist+fmnist.tex").stat().st_size > 0
    summary = aggregate(load_results(report.parent))
    written = pd.read_csv(report / "aggregate.csv")
    assert list(written.columns) == list(summary.columns) and len(written) == len(summary)
    key = ["scenario", "model", "metric"]
    written, summary = (f.set_index(key).sort_index() for f in (written, summary))
    assert written.index.equals(summary.index)
    for column in ("mean", "std"):  # full precision: bit-identical after the CSV round trip
        assert np.array_equal(written[column], summary[column], equal_nan=True)
    figures = sorted(p.name for p in (report / "figures").iterdir())
    for stem in ("fid_kid_vs_epsilon__mnist+fmnist", "outlier_rate_vs_epsilon__mnist+fmnist",
                 "auroc_vs_epsilon__mnist+fmnist", "roc__mnist+fmnist@0.2",
                 "roc__mnist+fmnist@0.4", "samples__mnist+fmnist", "training__mnist+fmnist",
                 "split__mnist+fmnist__rvqvae"):
        assert f"{stem}.png" in figures and f"{stem}.pdf" in figures
    for path in (report / "figures").iterdir():
        head = path.read_bytes()[:8]
        assert head.startswith(b"\x89PNG" if path.suffix == ".png" else b"%PDF"), path.name
        assert path.stat().st_size > 5000, path.name


def test_index_links_resolve_and_show_tables_and_provenance(report):
    index = (report / "README.md").read_text()
    links = re.findall(r"\]\(([^)]+)\)", index)
    # csv, records, md + tex per table, md + tex + csv + summary csv of the claims, png + pdf
    # per figure
    assert len(links) == 2 + 3 * 2 + 4 + 8 * 2
    for link in links:
        assert not link.startswith("/") and (report / link).is_file(), link
    # seeds 1 and 2 (offsets 0 and +1 spread): mean 10.0 + 0.4 / 2, std 0.4 / sqrt(2)
    assert "| vqvae | **10.20 ± 0.28 (n=2)** | 12.50 ± 0.28 (n=2) |" in index
    assert "error bars ±1 sample std over seeds (n = 2 seeds per point" in index
    assert "`cpu (synthetic, 2 threads)` (18 cells)" in index
    assert "`cfg000000001` (rvqvae)" in index
    assert "ROC curves for mnist+fmnist@0: its scores.pt hold no outliers" in index
    # two seeds per cell: every claim is withheld
    assert ("| mnist+fmnist@0.4 | rvqvae | 2 | −5 [−13, 3] | 0.5 | – | 2 of 2 better | 0/0 | "
            "too few seeds for a verdict (need ≥ 6) |") in index
    assert "Training health: not recorded (records written before the health check)." in index
    assert "Not shown, nothing to split: mnist+fmnist@0." in index


def test_split_figure_is_drawn_only_for_models_that_record_the_split(tmp_path):
    run = write_synthetic_run(tmp_path / "run", models=("vqvae", "trimmed-vqvae"), seeds=(0,))
    out = write_report(run, tmp_path / "out")
    assert not list((out / "figures").glob("split__*"))
    assert ("- split diagnostics for mnist+fmnist: no history.json records a per-epoch split"
            in (out / "README.md").read_text())


def test_missing_cell_files_skip_their_figures_with_a_note(tmp_path):
    run = write_synthetic_run(tmp_path / "run", cell_files=False, models=("vqvae",), seeds=(0,))
    out = write_report(run, tmp_path / "out")
    index = (out / "README.md").read_text()
    for note in ("ROC curves for mnist+fmnist@0.2: no scores.pt in its cells",
                 "sample grids for mnist+fmnist: no samples.pt or samples.png in its cells",
                 "training curves for mnist+fmnist: no history.json in its cells"):
        assert f"- {note}" in index
    assert (out / "figures" / "fid_kid_vs_epsilon__mnist+fmnist.png").is_file()
    assert not list((out / "figures").glob("roc__*"))


def test_rerun_replaces_the_old_report_and_refuses_foreign_folders(tmp_path):
    run = _records_run(tmp_path, models=("vqvae",))
    out = write_report(run, tmp_path / "out", figures=False)
    (out / "stale.txt").write_text("from an older report")
    assert main(["report", str(run), "--out", str(out), "--no-figures"]) == 0
    assert not (out / "stale.txt").exists() and (out / "README.md").is_file()
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me")
    with pytest.raises(UserError, match="is not a report folder; pass another --out"):
        write_report(run, foreign, figures=False)
    assert (foreign / "mine.txt").read_text() == "keep me"


def test_a_failing_report_leaves_the_previous_one_untouched(tmp_path, monkeypatch):
    import bench.report.writer as report_module

    run = _records_run(tmp_path, models=("vqvae",))
    out = write_report(run, tmp_path / "out", figures=False)
    before = (out / "README.md").read_text()

    def broken(table):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_module, "table_latex", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_report(run, out, figures=False)
    assert (out / "README.md").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "run"]  # no temp folder left


def test_roc_curve_agrees_with_scikit_learn_and_with_the_auroc_metric_including_ties():
    """The figures' ROC curve is the detection metric's own (one computation of ROC)."""
    import torch

    from bench.metrics.detection import detection_metrics, roc_curve

    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    generator = np.random.default_rng(0)
    is_outlier = generator.random(500) < 0.3
    score = np.round(generator.normal(size=500) + is_outlier, 1)  # rounding makes many ties
    fpr, tpr, auc = roc_curve(torch.tensor(score), torch.tensor(is_outlier))
    assert auc == pytest.approx(sklearn_metrics.roc_auc_score(is_outlier, score), abs=1e-6)
    ref_fpr, ref_tpr, _ = sklearn_metrics.roc_curve(is_outlier, score, drop_intermediate=False)
    assert np.allclose(fpr.numpy(), ref_fpr) and np.allclose(tpr.numpy(), ref_tpr)
    metric = detection_metrics({"s": torch.tensor(score)}, torch.tensor(is_outlier))[0]
    assert metric.metric == "auroc_transductive_s" and metric.value == auc


def test_scenario_names_that_are_no_file_names_get_safe_distinct_table_files(tmp_path, capsys):
    """A scenario name holding ``/`` (from a crafted records file) crashed the table writer:
    names were not made safe before they became file names. Two names that become the same
    file name get distinct ones."""
    from bench.records import load_records

    run = _records_run(tmp_path, models=("vqvae",))
    records = load_records(run)
    crafted = [{**r, "scenario": r["scenario"].replace("mnist+fmnist", name)}
               for name in ("a/b", "a-b", "../x") for r in records]
    path = tmp_path / "crafted.json"
    path.write_text(json.dumps(crafted))
    assert main(["report", str(path), "--no-figures"]) == 0
    tables = sorted(p.name for p in (tmp_path / "crafted_report" / "tables").glob("generation*"))
    assert tables == ["generation__..-x.md", "generation__..-x.tex", "generation__a-b-2.md",
                      "generation__a-b-2.tex", "generation__a-b.md", "generation__a-b.tex"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crafted.json", "crafted_report", "run"]
    index = (tmp_path / "crafted_report" / "README.md").read_text()
    assert "(tables/generation__a-b-2.md)" in index and "Generation quality — a/b" in index
