"""Run a preset's grid of scenario x model x seed into result records.

Each cell: build the scenario's data for the seed -> create and fit the model -> save the
checkpoint, samples, scores and training history -> evaluate the metrics -> write the cell's
records (``bench.records``). Finished cells are skipped (resume never recomputes a finished
cell); a cell that raises is recorded as failed with its error and the grid goes on, and is
retried by the next run of the same grid (unless ``keep_failed``).

Per-cell artefacts, under ``RUN_DIR/cells/<cell_id>/`` (read by ``bench.report``):
``model.pt`` (checkpoint), ``samples.pt`` (the first 64 generated images, float [0, 1]),
``scores.pt`` ({"transductive"|"inductive": {"is_outlier": bool tensor, <score>: tensor}}),
``history.json`` (one dict per training epoch).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench import records
from bench.cache import atomic_path, atomic_write_text
from bench.presets import ModelSpec, Preset
from bench.presets.checks import check_preset, sized_scenario
from bench.provenance import config_hash, device_name, provenance
from bench.run_folder import check_same_run, remove_stale_parts, write_run_info
from bench.run_lock import run_lock


@dataclass(frozen=True)
class RunSummary:
    """What a run did with each cell of the grid.

    ``finished``: computed now; ``skipped``: finished before; ``failed``: failed now;
    ``kept_failed``: failed before and not retried (``keep_failed=True``).
    """

    run_dir: Path
    finished: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: tuple[str, ...]
    kept_failed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every cell of the grid is finished (none failed, now or before)."""
        return not self.failed and not self.kept_failed

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        failed = len(self.failed) + len(self.kept_failed)
        kept = f" ({len(self.kept_failed)} kept from before, not retried)" if self.kept_failed \
            else ""
        return (f"{len(self.finished)} cell(s) finished, {len(self.skipped)} skipped (done "
                f"before), {failed} failed{kept}; records in {self.run_dir}")


def run_preset(
    preset: Preset, run_dir: str | Path, *, progress: bool = True,
    log: Callable[[str], None] | None = None, keep_failed: bool = False,
) -> RunSummary:
    """Run every cell of ``preset`` not yet finished in ``run_dir``; see the module docstring.

    Guarantees: only one process works on ``run_dir`` at a time (:mod:`bench.run_lock`); a
    folder holding a run of another configuration is refused before any cell runs
    (:func:`bench.run_folder.check_same_run`), and so is any bad input
    (:func:`bench.presets.checks.check_preset`); cells recorded as failed are run again unless
    ``keep_failed``; temporary files of an interrupted run are removed first.
    """
    check_preset(preset)
    run_dir = Path(run_dir)
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    with run_lock(run_dir, log=log):
        check_same_run(preset, run_dir)
        remove_stale_parts(run_dir, log)
        write_run_info(preset, run_dir)
        return _run_cells(preset, run_dir, progress=progress, log=log, keep_failed=keep_failed)


def _run_cells(preset: Preset, run_dir: Path, *, progress: bool, log, keep_failed: bool
               ) -> RunSummary:
    done: dict[str, list[str]] = {"finished": [], "skipped": [], "failed": [], "kept": []}
    data_cache: dict[tuple[str, int], Any] = {}
    cells = preset.cells()
    for number, (scenario_name, seed, spec) in enumerate(cells, start=1):
        cell = cell_id(scenario_name, spec, seed)
        prefix = f"[{number}/{len(cells)}] {cell}"
        before = records.cell_status(run_dir, cell)
        if before == "ok" or (before == "failed" and keep_failed):
            done["skipped" if before == "ok" else "kept"].append(cell)
            log(f"{prefix}: {'done' if before == 'ok' else 'failed'} before, skipped")
            continue
        log(f"{prefix}: {'retrying (failed before)' if before == 'failed' else 'running'}")
        start = time.perf_counter()
        traceback_file = run_dir / "cells" / f"{cell}.traceback.txt"
        try:
            scenario = sized_scenario(preset, scenario_name)
            key = (scenario_name, seed)
            if key not in data_cache:
                data_cache.clear()  # one scenario's data in memory at a time
                data_cache[key] = scenario.build(seed)
            cell_log = functools.partial(_prefixed, log, prefix)
            rows = _run_cell(preset, scenario, data_cache[key], spec, seed,
                             run_dir / "cells" / cell, progress=progress, log=cell_log)
            status = "ok"
            traceback_file.unlink(missing_ok=True)  # from an earlier failed attempt
        except Exception as error:  # a failing cell is recorded and the grid goes on
            rows = [_failed_row(scenario_name, spec, seed, error)]
            status = "failed"
            log(f"{prefix}: FAILED: {rows[0]['error']}")
            atomic_write_text(traceback_file, traceback.format_exc())
        wall = time.perf_counter() - start
        stamp = {"cell_id": cell, "wall_s": round(wall, 3), **provenance(preset.device)}
        # a row's own device (the model's) wins over the preset's
        records.write_cell(run_dir, cell, [records.make_record(**{**stamp, **row}) for row in rows])
        done["failed" if status == "failed" else "finished"].append(cell)
        log(f"{prefix}: {status} in {wall:.1f} s")
    return RunSummary(run_dir, *(tuple(done[k]) for k in ("finished", "skipped", "failed", "kept")))


def cell_id(scenario: str, spec: ModelSpec, seed: int) -> str:
    """A file-name-safe id, e.g. ``mnist+fmnist@0.2__rvqvae__s0`` (:func:`records.cell_id`)."""
    return records.cell_id(scenario, spec.display, seed)


def _run_cell(preset, scenario, data, spec: ModelSpec, seed: int, cell_dir: Path, *,
              progress: bool, log) -> list[dict[str, Any]]:
    from rvqvae.models import create_model

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
    model.save(cell_dir / "model.pt")
    _save_json(cell_dir / "history.json", history)

    log(f"trained in {fit_seconds:.1f} s; evaluating")
    values = _evaluate(preset, model, data, scenario, seed, cell_dir, log=log)
    base = {
        "device": device_name(str(model.device)),  # where the model computed
        "scenario": scenario.name, "model": spec.display, "seed": seed,
        "epsilon": scenario.epsilon, "inlier": scenario.inlier, "outlier": scenario.outlier,
        "config_hash": config_hash({"model": spec.name, "config": dataclasses.asdict(model.config),
                                    "scenario": dataclasses.asdict(scenario),
                                    "n_samples": preset.n_samples}),
    }
    rows = [{**base, "metric": v.metric, "value": v.value, "status": v.status,
             "error": v.reason or None, "protocol": v.protocol} for v in values]
    rows.append({**base, "metric": "train_images_per_s",
                 "value": len(data.train_images) * max(len(history), 1) / fit_seconds,
                 "status": "ok", "protocol": {"threads": torch.get_num_threads()}})
    return rows


def _evaluate(preset: Preset, model, data, scenario, seed: int, cell_dir: Path, *,
              log=None) -> list:
    """Every metric with the first extractor; only FID/KID again with any further extractor.

    Saves the first 64 samples and the outlier scores for the report's figures.
    """
    from bench.metrics.evaluate import EvalContext, run_metrics

    ctx = EvalContext(model, data, scenario, n_samples=preset.n_samples,
                      extractor=preset.extractors[0], seed=seed, device=preset.device, log=log)
    values = run_metrics(ctx)
    for extractor in preset.extractors[1:]:
        values += run_metrics(ctx.with_extractor(extractor), ["generation"])
    with atomic_path(cell_dir / "samples.pt") as tmp:
        torch.save(ctx.samples[:64].clone(), tmp)
    with atomic_path(cell_dir / "scores.pt") as tmp:
        torch.save(ctx.scores, tmp)
    return values


def _prefixed(log, prefix: str, line: str) -> None:
    log(f"{prefix}: {line}")


def _failed_row(scenario: str, spec: ModelSpec, seed: int, error: BaseException) -> dict:
    message = f"{type(error).__name__}: {error}".splitlines()[0][:500]
    return {"scenario": scenario, "model": spec.display, "seed": seed, "metric": "cell",
            "value": None, "status": "failed", "error": message}


def _epoch_line(record: dict[str, Any], epochs: int | None) -> str:
    parts = [f"epoch {record.get('epoch')}/{epochs or '?'}"]
    parts += [f"{k}={v:.4g}" for k, v in record.items()
              if k != "epoch" and isinstance(v, float)]
    return " ".join(parts)


def _save_json(path: Path, payload: Any) -> None:
    atomic_write_text(path, json.dumps(payload, indent=1, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return str(value)
