"""One cell of a grid (scenario x model x seed): computed anywhere, written by the driver.

:func:`compute_cell` touches no run folder: it builds the cell's data (or takes it), fits the
model, evaluates the metrics and returns a :class:`CellResult` (its records, its artefacts as
bytes, the traceback of a failure). :func:`write_cell_result` is the driver's half: it writes
the artefacts, then the records file (which marks the cell finished), each atomically. Both
executors (``bench.grid.runner`` in this process, ``bench.grid.on_ray`` on Ray workers) use this
pair, so a run folder looks the same whichever computed it.

Artefacts, under ``RUN_DIR/cells/<cell_id>/`` (read by ``bench.report``): ``model.pt``
(checkpoint), ``samples.pt`` (the first 64 generated images, float [0, 1]), ``scores.pt``
({"transductive"|"inductive": {"is_outlier": bool tensor, <score>: tensor}}), ``history.json``
(one dict per training epoch). A failed cell leaves ``cells/<cell_id>.traceback.txt``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench import records
from bench.cache import atomic_write_bytes, atomic_write_text
from bench.presets import ModelSpec, Preset
from bench.presets.spec import sized_scenario
from bench.provenance import config_hash, device_name, provenance

Log = Callable[[str], None]


@dataclass(frozen=True)
class Cell:
    """One scenario x model x seed of a preset's grid."""

    scenario: str
    spec: ModelSpec
    seed: int

    @property
    def id(self) -> str:
        """A file-name-safe id, e.g. ``mnist+fmnist@0.2__rvqvae__s0``."""
        return records.cell_id(self.scenario, self.spec.display, self.seed)


def grid_cells(preset: Preset) -> list[Cell]:
    """The preset's cells in run order (scenario, then seed, then model)."""
    return [Cell(scenario, spec, seed) for scenario, seed, spec in preset.cells()]


@dataclass
class CellResult:
    """What computing a cell produced: ``status`` is ``ok`` or ``failed``."""

    cell_id: str
    status: str
    records: list[dict[str, Any]]
    artefacts: dict[str, bytes] = field(default_factory=dict)
    traceback: str | None = None
    wall_s: float = 0.0

    @property
    def error(self) -> str | None:
        return self.records[0]["error"] if self.status == "failed" else None


def build_data(preset: Preset, cell: Cell):
    """The cell's scenario data for its seed (shared by every model of that scenario and seed),
    or None when building it fails: :func:`compute_cell` then builds it again and records the
    error as the cell's failure, so a bad scenario fails its cells, not the grid."""
    try:
        return sized_scenario(preset, cell.scenario).build(cell.seed)
    except Exception:
        return None


def compute_cell(preset: Preset, cell: Cell, data=None, *, scenario=None,
                 progress: bool = True, log: Log = lambda line: None) -> CellResult:
    """Compute one cell; a cell that raises becomes a failed result with its error and
    traceback (the grid goes on). ``data``: the cell's :func:`build_data`, built if None;
    ``scenario``: the preset's sized scenario, looked up if None (a worker that has not
    registered the driver's scenario files gets it passed)."""
    start = time.perf_counter()
    try:
        scenario = scenario or sized_scenario(preset, cell.scenario)
        if data is None:
            data = scenario.build(cell.seed)
        rows, artefacts = _fit_and_evaluate(preset, scenario, cell, data, progress=progress,
                                            log=log)
    except Exception as error:  # a failing cell is recorded and the grid goes on
        return failed_result(preset, cell, error, wall=time.perf_counter() - start,
                             trace=traceback.format_exc())
    wall = time.perf_counter() - start
    return CellResult(cell.id, "ok", _stamped(preset, cell, rows, wall), artefacts, None, wall)


def failed_result(preset: Preset, cell: Cell, error: BaseException, *, wall: float = 0.0,
                  trace: str | None = None) -> CellResult:
    """The result of a cell that failed with ``error`` (one record, metric ``cell``)."""
    message = f"{type(error).__name__}: {error}".splitlines()[0][:500]
    row = {"scenario": cell.scenario, "model": cell.spec.display, "seed": cell.seed,
           "metric": records.FAILED_CELL, "value": None, "status": "failed", "error": message}
    trace = trace or f"{message}\n"
    return CellResult(cell.id, "failed", _stamped(preset, cell, [row], wall), {}, trace, wall)


def _stamped(preset: Preset, cell: Cell, rows: list[dict], wall: float) -> list[dict]:
    stamp = {"cell_id": cell.id, "wall_s": round(wall, 3), **provenance(preset.device)}
    # a row's own device (the model's) wins over the preset's
    return [records.make_record(**{**stamp, **row}) for row in rows]


def write_cell_result(run_dir: Path, result: CellResult) -> None:
    """Write a cell's artefacts, then its records (the marker of a finished cell)."""
    cell_dir = run_dir / "cells" / result.cell_id
    for name, payload in result.artefacts.items():
        atomic_write_bytes(cell_dir / name, payload)
    traceback_file = run_dir / "cells" / f"{result.cell_id}.traceback.txt"
    if result.traceback is not None:
        atomic_write_text(traceback_file, result.traceback)
    else:
        traceback_file.unlink(missing_ok=True)  # from an earlier failed attempt
    records.write_cell(run_dir, result.cell_id, result.records)


def finish_cell(run_dir: Path, result: CellResult, prefix: str, board) -> None:
    """The driver's end of a cell, for both executors: write it, log its lines, count it on
    ``board`` (a :class:`bench.grid.progress.CellProgress`)."""
    write_cell_result(run_dir, result)
    if result.status == "failed":
        board.log(f"{prefix}: FAILED: {result.error}")
    board.log(f"{prefix}: {result.status} in {result.wall_s:.1f} s")
    board.finished(result.status)


def _fit_and_evaluate(preset: Preset, scenario, cell: Cell, data, *, progress: bool, log: Log
                      ) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    from rvqvae.models import create_model

    spec, seed = cell.spec, cell.seed
    torch.manual_seed(seed)
    model = create_model(spec.name, **spec.options).to(preset.device)
    epochs = getattr(model.config, "epochs", None)
    fit_start = time.perf_counter()
    history = model.fit(
        data.train_images, seed=seed,
        contamination=scenario.epsilon if preset.contamination_known else None,
        outlier_flags=data.train_is_outlier,
        on_epoch=(lambda rec: log(_epoch_line(rec, epochs))) if progress else None,
    )
    fit_seconds = time.perf_counter() - fit_start
    artefacts = {"model.pt": model.to_bytes(), "history.json": _json_bytes(history)}

    log(f"trained in {fit_seconds:.1f} s; evaluating")
    from bench.metrics.evaluate import FitRecord

    fit = FitRecord(len(data.train_images), len(history), fit_seconds, tuple(history))
    values, health = _evaluate(preset, model, data, scenario, seed, fit, artefacts, log=log)
    base = {
        "device": device_name(str(model.device)),  # where the model computed
        "scenario": scenario.name, "model": spec.display, "seed": seed,
        "epsilon": scenario.epsilon, "inlier": scenario.inlier, "outlier": scenario.outlier,
        "health": health,
        "config_hash": config_hash({"model": spec.name, "config": dataclasses.asdict(model.config),
                                    "scenario": dataclasses.asdict(scenario),
                                    "n_samples": preset.n_samples}),
    }
    rows = [{**base, "metric": v.metric, "value": v.value, "status": v.status,
             "error": v.reason or None, "protocol": v.protocol} for v in values]
    return rows, artefacts


def _evaluate(preset: Preset, model, data, scenario, seed: int, fit, artefacts: dict[str, bytes],
              *, log: Log) -> tuple[list, str | None]:
    """Every metric with the first extractor; only FID/KID again with any further extractor;
    and the cell's training health (``ok`` | ``degenerate: ...``, :mod:`bench.metrics.health`).

    Adds the first 64 samples and the outlier scores (for the report's figures) to ``artefacts``.
    """
    from bench.metrics.evaluate import EvalContext, phase_costs, run_metrics

    ctx = EvalContext(model, data, scenario, n_samples=preset.n_samples,
                      extractor=preset.extractors[0], seed=seed, device=preset.device, fit=fit,
                      log=log)
    groups = None
    if preset.metrics:  # the chosen groups in their registry order, always with "health"
        from bench.metrics.evaluate import METRICS

        groups = [name for name in METRICS.names() if name in {*preset.metrics, "health"}]
    measured = run_metrics(ctx, groups)
    values = measured.values
    for extractor in preset.extractors[1:]:
        values += run_metrics(ctx.with_extractor(extractor), ["generation"]).values
    values += phase_costs(ctx)
    artefacts["samples.pt"] = _torch_bytes(ctx.samples[:64].clone())
    artefacts["scores.pt"] = _torch_bytes(measured.artefacts.get("scores", {}))
    return values, measured.artefacts.get("health")


def _epoch_line(record: dict[str, Any], epochs: int | None) -> str:
    parts = [f"epoch {record.get('epoch')}/{epochs or '?'}"]
    parts += [f"{k}={v:.4g}" for k, v in record.items()
              if k != "epoch" and isinstance(v, float)]
    return " ".join(parts)


def _torch_bytes(payload: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _json_bytes(payload: Any) -> bytes:
    return (json.dumps(payload, indent=1, default=_jsonable) + "\n").encode("utf-8")


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return str(value)
