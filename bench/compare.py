"""``rvqvae-bench compare``: is a candidate run worse than a baseline, metric by metric?

>>> result = compare(load_cells("results/baselines/quick.csv"), load_cells("runs/new"))
>>> print(format_comparison(result)); exit_status(result)    # 1 on any regression

Inputs (``load_cells``): a run folder (``cells/*.json``), a report folder or any ``.csv`` with the
aggregate columns (``aggregate.csv`` of ``rvqvae-bench report``: one row per (scenario, model,
metric) with ``mean``, ``std``, ``n``, ``status``, ``protocol``: the compact format to commit as
a baseline), or a ``.json`` / ``.csv`` file of raw records (aggregated over seeds here).

Each (scenario, model, metric) gets one outcome:

- ``unchanged``: |candidate - baseline| <= the metric's tolerance;
- ``improved`` / ``regressed``: outside tolerance, in the metric's direction
  (:mod:`bench.metrics.catalog`: FID lower is better, AUROC higher). A metric with no known
  direction that moves outside tolerance counts as regressed. A candidate cell with any failed
  seed, or a value that became undefined (or defined), is regressed;
- ``missing``: in the baseline, not in the candidate; ``new``: the other way round;
- ``protocol``: both have it but measured differently (extractor, sample count, metric version):
  never compared, reported with the differing keys.

The exit status is 1 when any cell is regressed, missing or protocol, else 0.

Tolerances (``load_tolerances``) come from a TOML file, the packaged ``bench/tolerances.toml`` by
default::

    [default]                  # metrics that match no pattern
    rel = 0.05
    [metrics]                  # fnmatch patterns, first match in file order wins
    "fid_*" = { rel = 0.10 }
    "auroc_*" = { abs = 0.02 }

The allowed change is ``max(abs, rel * |baseline|, std * baseline std over seeds)``; keys a
pattern does not set are 0 (a pattern replaces the default, it does not add to it).
"""

from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.records import RECORD_FIELDS, load_records, load_results
from bench.report.aggregate import (
    AGGREGATE_COLUMNS,
    aggregate,
    family_and_direction,
    flatten_protocol,
    protocol_differences,
)
from rvqvae.errors import UserError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

OUTCOMES = ("protocol", "regressed", "missing", "improved", "new", "unchanged")
FAILING = ("protocol", "regressed", "missing")
KEY = ["scenario", "model", "metric"]
DEFAULT_TOLERANCES = Path(__file__).resolve().parent / "tolerances.toml"  # package data
COMPARISON_COLUMNS = (
    "outcome", "scenario", "model", "metric", "direction", "baseline", "candidate", "change",
    "allowed", "baseline_n", "candidate_n", "note",
)


@dataclass(frozen=True)
class Tolerance:
    """How far a value may move and still count as unchanged."""

    abs: float = 0.0
    rel: float = 0.0  # fraction of |baseline|
    std: float = 0.0  # multiples of the baseline's std over seeds

    def allowed(self, baseline: float, baseline_std: float = math.nan) -> float:
        spread = self.std * baseline_std if math.isfinite(baseline_std) else 0.0
        return max(self.abs, self.rel * abs(baseline), spread)


@dataclass(frozen=True)
class Tolerances:
    """A default tolerance and ``(pattern, tolerance)`` overrides; the first matching wins."""

    default: Tolerance = Tolerance(rel=0.05)
    overrides: tuple[tuple[str, Tolerance], ...] = ()
    source: str = "built-in default (rel 0.05)"

    def for_metric(self, metric: str) -> Tolerance:
        for pattern, tolerance in self.overrides:
            if fnmatch.fnmatchcase(metric, pattern):
                return tolerance
        return self.default


def compare(baseline: pd.DataFrame, candidate: pd.DataFrame,
            tolerances: Tolerances = Tolerances()) -> pd.DataFrame:
    """One row per (scenario, model, metric) of either side, columns ``COMPARISON_COLUMNS``,
    sorted by outcome (``OUTCOMES`` order: problems first) then key."""
    merged = baseline.merge(candidate, on=KEY, how="outer", suffixes=("_b", "_c"),
                            indicator=True)
    rows = [_compare_cell(cell, tolerances) for cell in merged.to_dict("records")]
    result = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    result["order"] = result["outcome"].map(OUTCOMES.index)
    return result.sort_values(["order", *KEY], kind="stable").drop(columns="order").reset_index(
        drop=True)


def exit_status(result: pd.DataFrame) -> int:
    """1 when any cell regressed, went missing or changed protocol; else 0."""
    return int(result["outcome"].isin(FAILING).any())


def counts(result: pd.DataFrame) -> dict[str, int]:
    return {outcome: int((result["outcome"] == outcome).sum()) for outcome in OUTCOMES}


def format_comparison(result: pd.DataFrame, *, show_unchanged: bool = True) -> str:
    """A plain-text report: one section per outcome (problems first), then a verdict line."""
    sections = []
    for outcome in OUTCOMES:
        part = result[result["outcome"] == outcome]
        if part.empty or (outcome == "unchanged" and not show_unchanged):
            continue
        shown = pd.DataFrame({
            "scenario": part["scenario"], "model": part["model"], "metric": part["metric"],
            "dir": part["direction"].map({"lower": "↓", "higher": "↑"}).fillna("?"),
            "baseline": part["baseline"].map(_number), "candidate": part["candidate"].map(_number),
            "change": [_change(r.baseline, r.candidate) for r in part.itertuples()],
            "allowed": part["allowed"].map(lambda a: "" if pd.isna(a) else f"±{a:.4g}"),
            "note": part["note"],
        })
        sections.append(f"{outcome.upper()} ({len(part)})\n"
                        + shown.to_string(index=False, justify="left"))
    tally = counts(result)
    verdict = "FAIL" if exit_status(result) else "OK"
    sections.append(
        ", ".join(f"{tally[o]} {o if o != 'protocol' else 'protocol mismatches'}"
                  for o in OUTCOMES) + f" -> {verdict}"
    )
    return "\n\n".join(sections)


def comparison_json(result: pd.DataFrame, **context: str) -> str:
    """The comparison as JSON: context, counts, exit status and every row (NaN -> null)."""
    rows = [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in row.items()} for row in result.to_dict("records")]
    return json.dumps({**context, "counts": counts(result), "exit_status": exit_status(result),
                       "rows": rows}, indent=1, default=str)


def load_cells(source: str | Path) -> pd.DataFrame:
    """The aggregate (``AGGREGATE_COLUMNS``) of a run folder, report folder or results file."""
    path = Path(source)
    if path.is_dir() and not (path / "cells").is_dir() and (path / "aggregate.csv").is_file():
        path = path / "aggregate.csv"
    if path.is_dir():
        return aggregate(load_results(path))
    if not path.is_file():
        raise UserError(f"{path} does not exist; give a run folder, a report folder, an "
                        f"aggregate.csv or a records .json/.csv file")
    if path.suffix not in (".csv", ".json"):
        raise UserError(f"{path} is neither a run folder nor a .csv/.json results file")
    if path.suffix == ".csv":
        frame = pd.read_csv(path)
        if {"mean", "n"} <= set(frame.columns) and "value" not in frame.columns:
            return _complete_aggregate(frame, path)
    records = pd.DataFrame(load_records(path))
    for name in RECORD_FIELDS:
        if name not in records.columns:
            records[name] = None
    missing = [c for c in ("scenario", "model", "metric", "status") if records[c].isna().all()]
    if missing:
        raise UserError(f"{path} has no {', '.join(missing)} column; expected result records or "
                        f"an aggregate.csv written by 'rvqvae-bench report'")
    return aggregate(records[list(RECORD_FIELDS)])


def load_tolerances(path: str | Path | None = None) -> Tolerances:
    """Tolerances from a TOML file (format in the module docstring).

    ``None`` reads the packaged defaults, ``bench/tolerances.toml`` (also the CI gate's).
    """
    if path is None:
        if not DEFAULT_TOLERANCES.is_file():
            return Tolerances()
        path = DEFAULT_TOLERANCES
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"tolerance file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"tolerance file {path} is not valid TOML ({error})") from None
    unknown = sorted(set(data) - {"default", "metrics"})
    if unknown:
        raise UserError(f"tolerance file {path}: unknown table {unknown[0]!r}; "
                        f"use [default] and [metrics]")
    default = _tolerance(data.get("default", {"rel": 0.05}), path, "[default]")
    overrides = tuple((pattern, _tolerance(value, path, f"metrics.{pattern!r}"))
                      for pattern, value in data.get("metrics", {}).items())
    return Tolerances(default, overrides, str(path))


def _compare_cell(cell: dict, tolerances: Tolerances) -> dict:
    metric = str(cell["metric"])
    side = "c" if cell["_merge"] == "right_only" else "b"
    direction = cell.get(f"direction_{side}")
    direction = direction if isinstance(direction, str) else family_and_direction(metric)[1]
    base, cand = cell.get("mean_b"), cell.get("mean_c")
    row = {"scenario": cell["scenario"], "model": cell["model"], "metric": metric,
           "direction": direction, "baseline": base, "candidate": cand,
           "change": _difference(base, cand), "allowed": math.nan,
           "baseline_n": cell.get("n_b"), "candidate_n": cell.get("n_c"), "note": ""}
    if cell["_merge"] == "left_only":
        return {**row, "outcome": "missing", "note": "not in the candidate"}
    if cell["_merge"] == "right_only":
        return {**row, "outcome": "new", "note": "not in the baseline"}
    base_protocol, cand_protocol = _text(cell.get("protocol_b")), _text(cell.get("protocol_c"))
    if base_protocol and cand_protocol and (
            flatten_protocol(base_protocol) != flatten_protocol(cand_protocol)):
        differences = protocol_differences(
            [flatten_protocol(base_protocol), flatten_protocol(cand_protocol)])
        return {**row, "outcome": "protocol", "note": f"baseline vs candidate: {differences}"}
    base_status, cand_status = cell["status_b"], cell["status_c"]
    if cand_status == "failed" or _count(cell.get("n_failed_c")):
        failed = _count(cell.get("n_failed_c"))
        why = _text(cell.get("note_c")) or "no error recorded"
        return {**row, "outcome": "regressed", "note": f"{failed or 'all'} seed(s) failed: {why}"}
    if base_status != cand_status:
        outcome = "improved" if base_status == "failed" else "regressed"
        return {**row, "outcome": outcome, "note": f"status {base_status} -> {cand_status}"}
    if cand_status != "ok":
        return {**row, "outcome": "unchanged", "note": f"{cand_status} in both"}
    tolerance = tolerances.for_metric(metric)
    base, cand = float(cell["mean_b"]), float(cell["mean_c"])
    base_std = cell.get("std_b")
    allowed = tolerance.allowed(base, math.nan if base_std is None else float(base_std))
    row["allowed"] = allowed
    if _count(cell.get("n_b")) != _count(cell.get("n_c")):
        row["note"] = f"seeds: {_count(cell.get('n_b'))} in baseline, {_count(cell.get('n_c'))} now"
    if abs(cand - base) <= allowed:
        return {**row, "outcome": "unchanged"}
    if direction not in ("lower", "higher"):
        return {**row, "outcome": "regressed",
                "note": "moved beyond tolerance; direction unknown (no metric family matches)"}
    better = (cand < base) if direction == "lower" else (cand > base)
    return {**row, "outcome": "improved" if better else "regressed"}


def _complete_aggregate(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    missing = [c for c in (*KEY, "mean") if c not in frame.columns]
    if missing:
        raise UserError(f"{path} lacks the column(s) {', '.join(missing)}; write it with "
                        f"'rvqvae-bench report' (aggregate.csv)")
    defaults = {"status": "ok", "n": 1, "n_failed": 0, "n_undefined": 0, "std": math.nan,
                "note": "", "protocol": ""}
    for column in AGGREGATE_COLUMNS:
        if column not in frame.columns:
            frame[column] = defaults.get(column)
    if frame["status"].isna().any():
        frame["status"] = frame["status"].fillna("ok")
    frame["direction"] = [
        d if isinstance(d, str) and d else family_and_direction(m)[1]
        for d, m in zip(frame["direction"], frame["metric"], strict=True)
    ]
    duplicated = frame.duplicated(KEY)
    if duplicated.any():
        scenario, model, metric = frame.loc[duplicated, KEY].iloc[0]
        raise UserError(f"{path} lists {scenario} / {model} / {metric} more than once; "
                        f"keep one row per (scenario, model, metric)")
    return frame[list(AGGREGATE_COLUMNS)]


def _tolerance(value, path: Path, where: str) -> Tolerance:
    if not isinstance(value, dict):
        raise UserError(f"tolerance file {path}: {where} must be a table like {{ rel = 0.1 }}")
    unknown = sorted(set(value) - {"abs", "rel", "std"})
    if unknown:
        raise UserError(f"tolerance file {path}: {where} has unknown key {unknown[0]!r}; "
                        f"use abs, rel or std")
    for key, number in value.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)) or number < 0:
            raise UserError(f"tolerance file {path}: {where} {key} must be a number >= 0, "
                            f"got {number!r}")
    return Tolerance(**{k: float(v) for k, v in value.items()})


def _text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _count(value) -> int:
    try:
        return 0 if value is None or math.isnan(float(value)) else int(value)
    except (TypeError, ValueError):
        return 0


def _difference(base, cand) -> float:
    if base is None or cand is None or pd.isna(base) or pd.isna(cand):
        return math.nan
    return float(cand) - float(base)


def _number(value) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.6g}"


def _change(base, cand) -> str:
    if base is None or cand is None or pd.isna(base) or pd.isna(cand):
        return ""
    delta = cand - base
    percent = f" ({100 * delta / abs(base):+.1f}%)" if base else ""
    return f"{delta:+.4g}{percent}"
