import json
import math

import pytest

import bench
from bench import records
from rvqvae.errors import UserError


def _row(**changes):
    row = dict(scenario="mnist+fmnist@0.2", model="vqvae", seed=0, metric="fid_domain_1k",
               value=3.5, status="ok", protocol={"extractor": "domain", "n": 1000})
    row.update(changes)
    return records.make_record(**row)


def test_make_record_fills_every_field_and_serialises_protocol():
    row = _row()
    assert tuple(row) == records.RECORD_FIELDS
    assert json.loads(row["protocol"]) == {"extractor": "domain", "n": 1000}
    assert row["timestamp"].endswith("Z")


def test_make_record_rejects_bad_status_and_unknown_fields():
    with pytest.raises(ValueError, match="status must be one of"):
        _row(status="great")
    with pytest.raises(ValueError, match="unknown record fields: \\['colour'\\]"):
        _row(colour="red")


def test_cells_round_trip_with_nan_as_null(tmp_path):
    rows = [_row(), _row(metric="auroc_transductive_recon", value=None, status="undefined",
                         error="no outliers at epsilon = 0")]
    path = records.write_cell(tmp_path, "cell-a", rows)
    assert json.loads(path.read_text())[1]["value"] is None
    assert records.cell_status(tmp_path, "cell-a") == "ok"
    assert records.cell_status(tmp_path, "cell-b") is None
    frame = bench.load_results(tmp_path)
    assert list(frame.columns) == list(records.RECORD_FIELDS)
    assert frame["value"].iloc[0] == 3.5 and math.isnan(frame["value"].iloc[1])
    assert not list(tmp_path.glob("cells/*.part"))


def test_loading_a_folder_without_records_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="holds no result records"):
        records.load_results(tmp_path)


def test_metric_names_come_from_the_catalog_and_are_found_back_as_their_entry():
    from bench.metrics.catalog import METRIC_FAMILIES, metric_family, metric_name

    assert metric_name("fid", extractor="domain", n=2000) == "fid_domain_2k"
    assert metric_name("kid_std", extractor="inception", n=500) == "kid_inception_500_std"
    assert metric_name("auroc", mode="inductive", score="prior_nll") == "auroc_inductive_prior_nll"
    assert metric_name("seconds", phase="metrics_health") == "seconds_metrics_health"
    assert metric_family("kid_domain_500_std") is METRIC_FAMILIES.get("kid_std")
    with pytest.raises(ValueError, match="missing part 'score'"):
        metric_name("auroc", mode="inductive")
    with pytest.raises(ValueError, match="is not found back"):
        metric_name("fid", extractor="Domain", n=500)  # capitals: the pattern refuses them


def test_the_catalog_refuses_an_unknown_figure_and_an_ambiguous_name():
    from bench.metrics.catalog import METRIC_FAMILIES, metric_family, register_metric

    with pytest.raises(ValueError, match="figure 'fid_vs_eps' is unknown"):
        register_metric("typo", r"typo_\d+", "generation", "lower", "x", table="generation",
                        figure="fid_vs_eps")
    register_metric("overlap-test", r"degenerate", "health", "lower", "the same name again",
                    table="health")
    try:
        with pytest.raises(ValueError, match="matches the catalog entries degenerate and "
                                             "overlap-test"):
            metric_family("degenerate")
    finally:
        METRIC_FAMILIES.unregister("overlap-test")
        from bench.metrics import catalog
        catalog._FOUND.clear()
    assert metric_family("degenerate").family == "health"
