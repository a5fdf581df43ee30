"""Aggregate result records over seeds: one row per (scenario, model, metric) *cell*.

The aggregate is the one long-format table everything downstream reads: the report's tables,
figures' captions, ``aggregate.csv`` and ``compare``. Its columns are ``AGGREGATE_COLUMNS``:

- ``setting``: the scenario without its ``@epsilon`` suffix (``mnist+fmnist``); ``epsilon``;
- ``family`` and ``direction`` (``lower``/``higher``; empty when the metric matches no family in
  :mod:`bench.metrics.catalog`);
- ``status``: ``ok`` when at least one seed has a value, else ``failed`` when a seed failed,
  else ``undefined``;
- ``mean``, ``std`` (sample std, ddof=1; NaN for n=1), ``n`` (seeds with a value),
  ``n_failed``, ``n_undefined``, ``seeds`` (e.g. ``0,1,2``);
- ``note``: why a value is undefined or the error line of a failed seed;
- ``protocol``: the JSON text shared by every record of the cell;
- ``device``, ``versions``: where the values were computed (``; ``-joined when seeds differ),
  so ``compare`` can say that two runs come from different machines.

Records whose ``protocol`` differs inside one cell are never averaged together: a
:class:`~rvqvae.errors.UserError` names the cell and the protocol keys that differ.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from bench.metrics.catalog import metric_family
from bench.records import FAILED_CELL
from rvqvae.errors import UserError

AGGREGATE_COLUMNS = (
    "setting", "scenario", "epsilon", "model", "metric", "family", "direction", "status", "mean",
    "std", "n", "n_failed", "n_undefined", "seeds", "note", "protocol", "device", "versions",
)
CELL_KEY = ["scenario", "model", "metric"]
CELL_FAILURE_METRICS = ("", FAILED_CELL)  # a crashed cell's one record ('' before it had one)


def aggregate(records: pd.DataFrame, *, mixed_protocols: str = "error") -> pd.DataFrame:
    """One row per (scenario, model, metric) in run order (first record timestamp), columns
    ``AGGREGATE_COLUMNS``.

    Guarantees: ``mean``/``std``/``n`` use only ``ok`` values; a failed record without a metric
    or with metric ``cell`` (a cell that died before measuring anything) counts as failed for
    every metric other records of its scenario carry; a seed recorded twice for one cell, or
    records of one cell with different protocols, raise :class:`UserError`. With
    ``mixed_protocols="mark"`` (the gate) such a cell is kept, its protocol a ``mixed_seeds``
    entry naming the differences, so it fails the comparison as that one cell's protocol
    mismatch instead of stopping the whole comparison.
    """
    records = _expand_cell_failures(records.copy())
    # Run order (models and scenarios as the grid listed them), not file-name order.
    records = records.sort_values("timestamp", kind="stable", na_position="last")
    rows = []
    for (scenario, model, metric), cell in records.groupby(CELL_KEY, sort=False, dropna=False):
        _check_unique_seeds(cell, scenario, model, metric)
        try:
            protocol = single_protocol(cell, f"{scenario} / {model} / {metric}")
        except MixedProtocols as mixed:
            if mixed_protocols == "error":
                raise
            protocol = json.dumps({"mixed_seeds": mixed.differences})
        ok = cell.loc[cell["status"] == "ok", "value"].astype(float)
        n_failed = int((cell["status"] == "failed").sum())
        n_undefined = int((cell["status"] == "undefined").sum())
        status = "ok" if len(ok) else ("failed" if n_failed else "undefined")
        family, direction = family_and_direction(metric)
        epsilon = _epsilon(cell, scenario)
        rows.append({
            "setting": setting_of(scenario),
            "scenario": scenario,
            "epsilon": epsilon,
            "model": model,
            "metric": metric,
            "family": family,
            "direction": direction,
            "status": status,
            "mean": float(ok.mean()) if len(ok) else math.nan,
            "std": float(ok.std(ddof=1)) if len(ok) > 1 else math.nan,
            "n": len(ok),
            "n_failed": n_failed,
            "n_undefined": n_undefined,
            "seeds": ",".join(str(s) for s in sorted(_seeds(cell))),
            "note": _note(cell),
            "protocol": protocol,
            "device": _joined(cell["device"]),
            "versions": _joined(cell["versions"]),
        })
    return pd.DataFrame(rows, columns=list(AGGREGATE_COLUMNS))


def single_protocol(cell: pd.DataFrame, where: str) -> str:
    """The protocol JSON text shared by the records of ``cell`` ('' when none carries one).

    Raises :class:`UserError` naming ``where`` and each differing key with its values.
    """
    seeds_of: dict[str, list[str]] = {}  # protocol text -> seeds, in record order
    for protocol, seed in zip(cell["protocol"], cell["seed"], strict=True):
        text = _protocol_text(protocol)
        if text:
            seeds_of.setdefault(text, []).append(str(seed_number(seed)))
    if len(seeds_of) <= 1:
        return next(iter(seeds_of), "")
    differences = protocol_differences([flatten_protocol(t) for t in seeds_of])
    seeds = " vs ".join(",".join(s) for s in seeds_of.values())
    raise MixedProtocols(
        f"cell {where} mixes records with different protocols ({differences}; seeds {seeds}); "
        f"re-run those seeds with one protocol or keep the runs in separate folders",
        differences=f"{differences}; seeds {seeds}")


class MixedProtocols(UserError):
    """Records of one cell measured with different protocols (``differences`` names them)."""

    def __init__(self, message: str, *, differences: str):
        super().__init__(message)
        self.differences = differences


def protocol_differences(protocols: list[dict[str, Any]]) -> str:
    """``key: a vs b`` for every key whose value differs between the flattened protocols."""
    keys = sorted(set().union(*protocols))
    parts = []
    for key in keys:
        values = [p.get(key, "<absent>") for p in protocols]
        if len({json.dumps(v, sort_keys=True) for v in values}) > 1:
            parts.append(f"{key}: " + " vs ".join(_show(v) for v in values))
    return "; ".join(parts)


def flatten_protocol(text: str) -> dict[str, Any]:
    """A protocol's JSON text as a flat dict with dotted keys (``extractor.version``)."""
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {"protocol": text}
    if not isinstance(value, dict):
        return {"protocol": value}
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            flat.update({f"{key}.{k}": v for k, v in flatten_protocol(json.dumps(item)).items()})
        else:
            flat[key] = item
    return flat


def family_and_direction(metric: str) -> tuple[str, str]:
    """``(family, direction)`` from the catalog; ``("other", "")`` for an unknown metric."""
    try:
        entry = metric_family(str(metric))
    except KeyError:
        return "other", ""
    return entry.family, entry.direction


def setting_of(scenario: str) -> str:
    """The scenario without its contamination suffix: ``mnist+fmnist@0.2`` -> ``mnist+fmnist``."""
    head, sep, _ = str(scenario).rpartition("@")
    return head if sep else str(scenario)


def _expand_cell_failures(records: pd.DataFrame) -> pd.DataFrame:
    empty_metric = records["metric"].isna() | records["metric"].astype(str).str.strip().isin(
        CELL_FAILURE_METRICS)
    failures = records[empty_metric & (records["status"] == "failed")]
    records = records[~empty_metric]
    expanded = []
    for _, failure in failures.iterrows():
        same_scenario = records[records["scenario"] == failure["scenario"]]
        if same_scenario.empty:  # every cell of the scenario died: nothing to show per metric
            same_scenario = records
        taken = records[
            (records["scenario"] == failure["scenario"]) & (records["model"] == failure["model"])
            & (records["seed"] == failure["seed"])
        ]["metric"]
        for metric in pd.unique(same_scenario["metric"]):
            if metric not in set(taken):
                expanded.append({**failure.to_dict(), "metric": metric, "protocol": None})
    if expanded:
        records = pd.concat([records, pd.DataFrame(expanded)], ignore_index=True)
    return records


def _check_unique_seeds(cell: pd.DataFrame, scenario: str, model: str, metric: str) -> None:
    seeds = cell["seed"].dropna().tolist()
    repeated = sorted({s for s in seeds if seeds.count(s) > 1}, key=str)
    if repeated:
        raise UserError(
            f"cell {scenario} / {model} / {metric} has seed {repeated[0]} recorded more than once; "
            f"remove the duplicate cell file or report the runs separately"
        )


def _epsilon(cell: pd.DataFrame, scenario: str) -> float:
    values = pd.to_numeric(cell["epsilon"], errors="coerce").dropna()
    if len(values):
        return float(values.iloc[0])
    _, sep, tail = str(scenario).rpartition("@")
    try:
        return float(tail) if sep else math.nan
    except ValueError:
        return math.nan


def _seeds(cell: pd.DataFrame) -> set:
    return {seed_number(seed) for seed in cell["seed"].dropna()}


def seed_number(seed: Any) -> Any:
    """A seed as read back from records (``3``, ``3.0``, ``"3"``) as the int 3; other values
    unchanged."""
    try:
        return int(seed) if float(seed).is_integer() else seed
    except (TypeError, ValueError):
        return seed


def _joined(values: pd.Series) -> str:
    return "; ".join(dict.fromkeys(str(v) for v in values if present(v)))


def _note(cell: pd.DataFrame) -> str:
    lines = [str(e) for e in cell.loc[cell["status"] != "ok", "error"] if present(e)]
    return "; ".join(dict.fromkeys(lines))


#: keys that earlier records carried in their protocol but that vary with the seed (KID's subset
#: seed is the cell seed): ignored, so seeds of one cell aggregate together
PER_SEED_KEYS = ("kid_seed",)


def _protocol_text(protocol: Any) -> str:
    """Canonical JSON text (sorted keys, no per-seed keys), so formatting differences never look
    like a mismatch."""
    if not present(protocol):
        return ""
    if isinstance(protocol, str):
        try:
            protocol = json.loads(protocol)
        except json.JSONDecodeError:
            return protocol.strip()
    if isinstance(protocol, dict):
        protocol = {k: v for k, v in protocol.items() if k not in PER_SEED_KEYS}
    return json.dumps(protocol, sort_keys=True)


def present(value: Any) -> bool:
    """A field that holds something: not None, NaN or blank text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return str(value).strip() != ""


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
