"""Result records: one row per (scenario, model, seed, metric), written per cell atomically.

A *cell* is one (scenario, model, seed). Its records are written together as
``RUN_DIR/cells/<cell_id>.json`` (temp file + rename), so a cell is either wholly written or
absent. A failed cell is written too, with one record ``metric="cell"``, ``status="failed"``
and its error, so the grid can go on and the failure is visible. :func:`cell_status` tells a
finished cell (``ok``: resume skips it) from a failed one (``failed``: resume retries it
unless asked to keep it) and an absent one (``None``).

Record fields (``RECORD_FIELDS``):
- ``scenario, model, seed, metric``: the key; ``epsilon, inlier, outlier``: scenario facts;
- ``value``: a float, NaN unless ``status == "ok"``;
- ``status``: ``ok`` | ``undefined`` (e.g. AUROC at epsilon = 0: no outliers) | ``failed``;
- ``error``: the error line of a failed cell or the reason a value is undefined;
- ``protocol``: JSON text of everything that makes values comparable (extractor, sample count,
  metric code version...). Reports refuse to aggregate records whose protocols differ;
- ``config_hash, git_sha, versions, device, wall_s, cell_id, timestamp``: provenance
  (``git_sha`` ends in ``-dirty`` when the code had uncommitted changes);
- ``health``: the cell's training health, ``ok`` or ``degenerate: <reasons>``
  (:mod:`bench.metrics.health`; empty in records written before it existed);
- ``plugins``: JSON text of the plugins loaded when the record was computed (name, version,
  file; :mod:`bench.plugins`), empty when none were.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bench.cache import atomic_write_bytes, atomic_write_text
from rvqvae.errors import UserError

RECORD_FIELDS = (
    "scenario", "model", "seed", "metric", "value", "status", "error", "epsilon", "inlier",
    "outlier", "protocol", "config_hash", "git_sha", "versions", "device", "wall_s", "cell_id",
    "timestamp", "health", "plugins",
)
STATUSES = ("ok", "undefined", "failed")
FAILED_CELL = "cell"  # the metric of the one record a cell that raised writes
CELLS = "cells"
ARCHIVE = "records.json.gz"  # every record of a study, beside its report
ARCHIVE_FORMAT = "rvqvae-bench records 1"


def make_record(**fields: Any) -> dict[str, Any]:
    """A record with every field of ``RECORD_FIELDS`` (missing ones empty), validated."""
    record = {name: fields.pop(name, None) for name in RECORD_FIELDS}
    if fields:
        raise ValueError(f"unknown record fields: {sorted(fields)}")
    if record["status"] not in STATUSES:
        raise ValueError(f"record status must be one of {STATUSES}, got {record['status']!r}")
    value = record["value"]
    record["value"] = float("nan") if value is None else float(value)
    if isinstance(record["protocol"], Mapping):
        record["protocol"] = json.dumps(record["protocol"], sort_keys=True)
    for name in ("versions", "plugins"):
        if isinstance(record[name], (Mapping, list)):
            record[name] = json.dumps(record[name], sort_keys=True)
    record.setdefault("timestamp", None)
    record["timestamp"] = record["timestamp"] or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return record


def cell_path(run_dir: str | Path, cell_id: str) -> Path:
    return Path(run_dir) / CELLS / f"{cell_id}.json"


def cell_id(scenario: str, model: str, seed: int) -> str:
    """A file-name-safe cell id, e.g. ``mnist+fmnist@0.2__rvqvae__s0`` (model: its label)."""
    return re.sub(r"[^A-Za-z0-9_.+@-]", "_", f"{scenario}__{model}__s{seed}")


def cell_status(run_dir: str | Path, cell_id: str) -> str | None:
    """``"ok"`` (finished), ``"failed"`` (recorded as failed) or ``None`` (not recorded).

    A records file that cannot be read or parsed counts as not recorded (the cell is run
    again and its file replaced).
    """
    try:
        rows = json.loads(cell_path(run_dir, cell_id).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(rows, list) or not rows:
        return None
    failed = any(isinstance(r, dict) and r.get("status") == "failed"
                 and r.get("metric") == FAILED_CELL for r in rows)
    return "failed" if failed else "ok"


def write_cell(run_dir: str | Path, cell_id: str, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write one cell's records atomically; NaN is stored as JSON null."""
    rows = [{k: _json_safe(v) for k, v in r.items()} for r in records]
    return atomic_write_text(cell_path(run_dir, cell_id), json.dumps(rows, indent=1) + "\n")


def load_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every record of a run folder, of a single ``.json``/``.csv`` records file, or of a
    records archive (``records.json.gz``, :func:`write_archive`).

    Raises :class:`UserError` naming the file when one is not valid JSON or not a list of
    records."""
    path = Path(run_dir)
    if path.is_file():
        files = [path]
    elif (path / CELLS).is_dir():
        files = sorted((path / CELLS).glob("*.json"))
    else:
        raise UserError(
            f"{path} holds no result records (expected {path}/{CELLS}/*.json); "
            f"run 'rvqvae-bench run' first or point at a run folder"
        )
    rows: list[dict[str, Any]] = []
    for file in files:
        if file.suffix == ".csv":
            import pandas as pd

            rows.extend(pd.read_csv(file).to_dict("records"))
            continue
        if file.name.endswith(".gz"):
            rows.extend(read_archive(file)[0])
            continue
        try:
            rows.extend(_record_list(json.loads(file.read_text()), file))
        except json.JSONDecodeError as error:
            raise UserError(f"{file} is not valid JSON ({error}); delete it to recompute") from None
    for row in rows:
        if row.get("value") is None:
            row["value"] = float("nan")
    return rows


def write_archive(path: str | Path, rows: Iterable[Mapping[str, Any]], run_info: Mapping
                  ) -> Path:
    """Write ``rows`` and the run's ``run.json`` content as one gzip JSON file, atomically:
    what ``rvqvae-bench report <file>`` needs to rebuild a study's tables and claims. The
    bytes depend only on the records (no time stamp in the gzip header)."""
    payload = {"format": ARCHIVE_FORMAT, "run": dict(run_info),
               "records": [{k: _json_safe(v) for k, v in r.items()} for r in rows]}
    text = json.dumps(payload, indent=0, sort_keys=True, default=str) + "\n"
    return atomic_write_bytes(Path(path), gzip.compress(text.encode("utf-8"), mtime=0))


def read_archive(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(records, run_info)`` of a records archive; :class:`UserError` if it is not one."""
    path = Path(path)
    try:
        payload = json.loads(gzip.decompress(path.read_bytes()))
    except (OSError, EOFError, ValueError) as error:
        raise UserError(f"{path} is not a records archive (a gzip JSON file written by "
                        f"'rvqvae-bench report'): {error}") from None
    if not isinstance(payload, dict) or payload.get("format") != ARCHIVE_FORMAT:
        raise UserError(f"{path} is not a records archive of format {ARCHIVE_FORMAT!r}")
    run_info = payload.get("run") if isinstance(payload.get("run"), dict) else {}
    return _record_list(payload.get("records"), path), run_info


def _record_list(rows: Any, file: Path) -> list[dict[str, Any]]:
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise UserError(f"{file} is not a list of records (JSON objects with scenario, model, "
                        f"seed, metric, value...); delete it to recompute the cell")
    return rows


def load_results(run_dir: str | Path):
    """The records of a run as a pandas DataFrame with the columns ``RECORD_FIELDS``."""
    return records_frame(load_records(run_dir))


def records_frame(rows: list[dict[str, Any]]):
    """Records as a pandas DataFrame with exactly the columns ``RECORD_FIELDS``."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    for name in RECORD_FIELDS:
        if name not in frame.columns:
            frame[name] = None
    return frame[list(RECORD_FIELDS)]


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
