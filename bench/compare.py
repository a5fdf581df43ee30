"""``rvqvae-bench compare``: is a candidate run worse than a baseline, metric by metric?

>>> result = compare(load_cells("results/baselines/quick.csv"), load_cells("runs/new"))
>>> print(format_comparison(result)); exit_status(result)    # 1 on any regression

Inputs (``load_cells``): a run folder (``cells/*.json``), a report folder or any ``.csv`` with the
aggregate columns (``aggregate.csv`` of ``rvqvae-bench report``: one row per (scenario, model,
metric) with ``mean``, ``std``, ``n``, ``status``, ``protocol``: the compact format to commit as
a baseline), or a ``.json`` / ``.csv`` file of raw records (aggregated over seeds here).

Each (scenario, model, metric) gets one outcome:

- ``unchanged``: the mean over seeds moved less than its allowance;
- ``improved`` / ``regressed``: moved beyond it, in the metric's direction
  (:mod:`bench.metrics.catalog`: FID lower is better, AUROC higher). The allowance is a
  one-sided test over seeds with a floor (:mod:`bench.regression_rule`), so machine noise on
  chaotic training does not fail the gate and a real regression does. A metric with no known
  direction that moves beyond it counts as regressed. A candidate cell with any failed seed,
  or a value that became undefined (or defined), is regressed. A model's metric that got worse
  in every scenario, each time within its allowance, is regressed when the scenarios'
  evidence pooled (Fisher's method, :func:`pool_over_scenarios`) is below the metric's level;
- ``missing``: in the baseline, not in the candidate; ``new``: the other way round;
- ``protocol``: both have it but measured differently (extractor or its weights, sample count,
  metric code version): never compared, reported with the differing keys. Differences that
  only say the machine differs (``MACHINE_PROTOCOL_KEYS``: thread count) are compared as usual
  and noted; so are a different CPU, device or library versions (:func:`machine_notes`).

The exit status is 1 when any cell is regressed, missing or protocol, else 0.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from scipy import stats

from bench.records import RECORD_FIELDS, STATUSES, load_records, load_results
from bench.regression_rule import (  # noqa: F401  (re-exported: the gate's public API)
    DEFAULT_TOLERANCES,
    Tolerance,
    Tolerances,
    allowance,
    load_tolerances,
)
from bench.report.aggregate import (
    AGGREGATE_COLUMNS,
    aggregate,
    family_and_direction,
    flatten_protocol,
    protocol_differences,
)
from rvqvae.errors import UserError

OUTCOMES = ("protocol", "regressed", "missing", "improved", "new", "unchanged")
FAILING = ("protocol", "regressed", "missing")
KEY = ["scenario", "model", "metric"]
#: protocol keys that name the machine, not the measurement: a difference is a note
MACHINE_PROTOCOL_KEYS = ("threads",)
COMPARISON_COLUMNS = (
    "outcome", "scenario", "model", "metric", "direction", "baseline", "candidate", "change",
    "allowed", "baseline_n", "candidate_n", "note",
)


def compare(baseline: pd.DataFrame, candidate: pd.DataFrame,
            tolerances: Tolerances | None = None) -> pd.DataFrame:
    """One row per (scenario, model, metric) of either side, columns ``COMPARISON_COLUMNS``,
    sorted by outcome (``OUTCOMES`` order: problems first) then key. ``tolerances`` default to
    the built-in ones (``Tolerances()``); the CLI reads the packaged file."""
    tolerances = tolerances or Tolerances()
    merged = baseline.merge(candidate, on=KEY, how="outer", suffixes=("_b", "_c"),
                            indicator=True)
    rows = [_compare_cell(cell, tolerances) for cell in merged.to_dict("records")]
    pool_over_scenarios(rows, tolerances)
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


def comparison_json(result: pd.DataFrame, **context) -> str:
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
        return aggregate(load_results(path), mixed_protocols="mark")
    if not path.is_file():
        raise UserError(f"{path} does not exist; give a run folder, a report folder, an "
                        f"aggregate.csv or a records .json/.csv file")
    if path.suffix not in (".csv", ".json"):
        raise UserError(f"{path} is neither a run folder nor a .csv/.json results file")
    if path.suffix == ".csv":
        records = _read_csv(path)
        if {"mean", "n"} <= set(records.columns) and "value" not in records.columns:
            return complete_aggregate(records, path)
    else:
        records = pd.DataFrame(load_records(path))
    for name in RECORD_FIELDS:
        if name not in records.columns:
            records[name] = None
    missing = [c for c in ("scenario", "model", "metric", "status") if records[c].isna().all()]
    if missing:
        raise UserError(f"{path} has no {', '.join(missing)} column; expected result records or "
                        f"an aggregate.csv written by 'rvqvae-bench report'")
    _check_columns(records, path, RECORD_COLUMN_RULES, "value")
    return aggregate(records[list(RECORD_FIELDS)], mixed_protocols="mark")


#: what each column of a results file must hold (:func:`_check_columns`)
AGGREGATE_COLUMN_RULES = {"scenario": "text", "model": "text", "metric": "text",
                          "status": "status", "mean": "number", "std": "spread",
                          "n": "count", "n_failed": "count", "n_undefined": "count"}
RECORD_COLUMN_RULES = {"status": "status", "value": "number", "seed": "count"}
_RULE_WANTS = {"text": "text", "status": f"one of {', '.join(STATUSES)}",
               "number": "a number", "spread": "a number >= 0", "count": "an integer >= 0"}


def _check_columns(frame: pd.DataFrame, path: Path, rules: dict[str, str], value: str) -> None:
    """Each column of ``rules`` holds what its rule says (empty cells allowed except for
    text and status; ``value``, the measured column, finite where the status is ``ok``);
    else one :class:`UserError` naming the file, the row (1 = the first under the header),
    the column and the value. Text read where a number belongs would otherwise stop the
    comparison with a traceback (exit 1, read as "a regression"), and a count of text be
    read as 0 seeds."""
    for column, rule in rules.items():
        if column not in frame.columns:
            continue
        cells = frame[column]
        numbers = pd.to_numeric(cells, errors="coerce")
        if rule == "text":
            bad = cells.isna() | (cells.astype(str).str.strip() == "")
        elif rule == "status":
            bad = ~cells.isin(STATUSES)
        else:  # True/False are not numbers here, though pandas reads them as 1/0
            bad = cells.notna() & (numbers.isna() | pd.api.types.is_bool_dtype(cells))
            if rule == "spread":
                bad |= numbers < 0
            elif rule == "count":
                bad |= numbers.notna() & ((numbers < 0) | (numbers > 2**32) | (numbers % 1 != 0))
            elif column == value:
                bad |= (frame["status"] == "ok") & ~numbers.map(math.isfinite, na_action=None)
        if bad.any():
            row = int(bad.to_numpy().argmax())
            wants = _RULE_WANTS[rule] + (", finite where status is ok" if column == value
                                         else "")
            raise UserError(f"{path} row {row + 1}: {column} must be {wants}, got "
                            f"{_shown(cells.iloc[row])}; regenerate the file with "
                            f"'rvqvae-bench report' (aggregate.csv) or fix that row")
        if rule in ("number", "spread", "count"):
            frame[column] = numbers


def _shown(value) -> str:
    text = repr(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= 40 else text[:37] + "..."


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
    notes = []
    base_protocol, cand_protocol = _text(cell.get("protocol_b")), _text(cell.get("protocol_c"))
    if base_protocol and cand_protocol:
        flat_b, flat_c = flatten_protocol(base_protocol), flatten_protocol(cand_protocol)
        for side, flat in (("baseline", flat_b), ("candidate", flat_c)):
            if "mixed_seeds" in flat:
                return {**row, "outcome": "protocol",
                        "note": f"the {side}'s seeds were measured differently: "
                                f"{flat['mixed_seeds']}"}
        differing = {k for k in set(flat_b) | set(flat_c) if flat_b.get(k) != flat_c.get(k)}
        if differing - set(MACHINE_PROTOCOL_KEYS):
            differences = protocol_differences([flat_b, flat_c])
            return {**row, "outcome": "protocol", "note": f"baseline vs candidate: {differences}"}
        if differing:
            notes.append("machine: " + protocol_differences([flat_b, flat_c]))
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
    n_b, n_c = _count(cell.get("n_b")), _count(cell.get("n_c"))
    change = float(cell["mean_c"]) - float(cell["mean_b"])
    judged = allowance(tolerances.for_metric(metric), change,
                       (float(cell["mean_b"]), _float(cell.get("std_b")), n_b),
                       (_float(cell.get("std_c")), n_c))
    row["allowed"] = judged.allowed
    if direction in ("lower", "higher") and math.isfinite(judged.p_value):
        worse = (change > 0) if direction == "lower" else (change < 0)
        # one-sided p of a move this far in the bad direction, for the pooled test
        row["_p_worse"] = judged.p_value if worse else 1.0 - judged.p_value
        row["_beyond_floor"] = worse and abs(change) > tolerances.for_metric(metric).floor(
            float(cell["mean_b"]))
    notes.append(f"seeds {n_b} vs {n_c}, " + (
        "floor only (one seed each)" if judged.rule == "floor"
        else f"{judged.rule} p={judged.p_value:.2g}"))
    row["note"] = "; ".join(notes)
    if abs(change) <= judged.allowed:
        return {**row, "outcome": "unchanged"}
    if direction not in ("lower", "higher"):
        return {**row, "outcome": "regressed", "note": row["note"] +
                "; moved beyond its allowance; direction unknown (no metric family matches)"}
    better = (change < 0) if direction == "lower" else (change > 0)
    return {**row, "outcome": "improved" if better else "regressed"}


def pool_over_scenarios(rows: list[dict], tolerances: Tolerances) -> None:
    """A model's metric that got worse in every scenario, each time within its allowance, is
    regressed when the scenarios' one-sided p-values combined (Fisher's method: each scenario's
    seeds are independent data) fall below the metric's level, and each move is beyond the
    floor. One scenario alone cannot show a small systematic shift; two or more together can
    (e.g. 5% of rows quantised to a wrong codeword: +50% reconstruction error at p = 0.003 and
    0.008 in the two ci scenarios, p = 3e-4 together). Marks those rows regressed, in place."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        if "_p_worse" in row:
            groups.setdefault((row["model"], row["metric"]), []).append(row)
    for (_, metric), group in groups.items():
        if len(group) < 2 or not all(row["_beyond_floor"] for row in group):
            continue
        statistic = -2.0 * sum(math.log(max(row["_p_worse"], 1e-300)) for row in group)
        p_value = float(stats.chi2.sf(statistic, 2 * len(group)))
        if p_value < tolerances.for_metric(metric).level:
            for row in group:
                if row["outcome"] == "unchanged":
                    row["outcome"] = "regressed"
                    row["note"] += (f"; worse in all {len(group)} scenarios, pooled "
                                    f"(Fisher) p={p_value:.2g}")


def machine_notes(baseline: pd.DataFrame, candidate: pd.DataFrame) -> list[str]:
    """Lines naming how the machines differ (device / CPU and threads, package versions).

    A different machine is never a failure: the gate's allowance absorbs the noise it causes.
    """
    notes = []
    devices = [_distinct(frame, "device") for frame in (baseline, candidate)]
    if all(devices) and devices[0] != devices[1]:
        notes.append(f"machine differs: {' / '.join(devices[0])} vs {' / '.join(devices[1])}")
    versions = [_versions(frame) for frame in (baseline, candidate)]
    if all(versions):
        changed = [f"{name} {versions[0].get(name, '-')} vs {versions[1].get(name, '-')}"
                   for name in sorted(set(versions[0]) | set(versions[1]))
                   if versions[0].get(name) != versions[1].get(name)]
        if changed:
            notes.append("versions differ: " + ", ".join(changed))
    return notes


def _distinct(frame: pd.DataFrame, column: str) -> list[str]:
    if column not in frame.columns:
        return []
    values = {part.strip() for value in frame[column].dropna() for part in str(value).split(";")}
    return sorted(v for v in values if v)


def _versions(frame: pd.DataFrame) -> dict[str, str]:
    merged: dict[str, str] = {}
    for text in _distinct(frame, "versions"):
        try:
            merged.update(json.loads(text))
        except (json.JSONDecodeError, TypeError):
            continue
    return merged


def _float(value) -> float:
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def _read_csv(path: Path) -> pd.DataFrame:
    """The CSV as a frame; a truncated or malformed file is one UserError naming it."""
    try:
        if not path.read_bytes().endswith(b"\n"):
            raise ValueError("it ends mid-line: truncated?")
        frame = pd.read_csv(path)
    except (ValueError, UnicodeDecodeError) as error:  # pandas' ParserError is a ValueError
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{path} is not a readable CSV ({first}); regenerate it with "
                        f"'rvqvae-bench report'") from None
    return frame


def complete_aggregate(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """An aggregate read from a file (``path`` names it in errors), checked, with the columns
    it lacks filled by their defaults."""
    missing = [c for c in (*KEY, "mean") if c not in frame.columns]
    if missing:
        raise UserError(f"{path} lacks the column(s) {', '.join(missing)}; write it with "
                        f"'rvqvae-bench report' (aggregate.csv)")
    defaults = {"status": "ok", "n": 1, "n_failed": 0, "n_undefined": 0, "std": math.nan,
                "note": "", "protocol": "", "device": "", "versions": ""}
    for column in AGGREGATE_COLUMNS:
        if column not in frame.columns:
            frame[column] = defaults.get(column)
    if frame["status"].isna().any():
        frame["status"] = frame["status"].fillna("ok")
    _check_columns(frame, path, AGGREGATE_COLUMN_RULES, "mean")
    frame[KEY] = frame[KEY].astype(str)
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
