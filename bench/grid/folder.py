"""What a run folder promises: one grid, resumed only with the same configuration.

``RUN_DIR/run.json`` records the grid (the preset as plain data, the resolved scenario specs)
and the command. :func:`check_same_run` compares a new run's grid with it before any cell
runs:

- every field must be equal except ``name`` and ``description`` (labels) and ``seeds``;
- ``seeds`` may grow: a rerun whose seeds include all recorded seeds extends the grid (a
  superset), and ``run.json`` then records the new seeds. Dropping a recorded seed is an error
  (the folder would hold cells the recorded grid does not know);
- the scenario specs behind the names must be equal too (a custom scenario file that changed).

Any other difference is one :class:`UserError` naming each differing field with both values.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.cache import atomic_write_text
from bench.provenance import provenance
from rvqvae.atomic import PART_SUFFIX
from rvqvae.errors import UserError

RUN_INFO = "run.json"
_LABELS = ("name", "description")


def grid_of(preset) -> dict[str, Any]:
    """The preset and its resolved scenario specs as JSON data (what ``run.json`` records)."""
    from bench.scenarios import get_scenario

    specs = {name: dataclasses.asdict(get_scenario(name)) for name in preset.scenarios}
    return json_ready({"preset": dataclasses.asdict(preset), "scenario_specs": specs})


def check_same_run(preset, run_dir: Path) -> None:
    """Raise :class:`UserError` when ``run_dir`` holds a run of another grid (module doc)."""
    recorded = read_run_info(run_dir)
    if not recorded:
        return
    new, old = grid_of(preset), {k: recorded.get(k) for k in ("preset", "scenario_specs")}
    differences = []
    old_preset, new_preset = old["preset"] or {}, new["preset"]
    for key in sorted(set(old_preset) | set(new_preset)):
        if key in _LABELS or old_preset.get(key) == new_preset.get(key):
            continue
        if key == "seeds" and set(old_preset.get(key) or ()) <= set(new_preset.get(key) or ()):
            continue  # seeds added: a superset grid
        differences.append(f"{key}: {_short(old_preset.get(key))} -> {_short(new_preset.get(key))}")
    for name, spec in new["scenario_specs"].items():
        before = (old["scenario_specs"] or {}).get(name)
        if before is not None and before != spec:
            keys = sorted(k for k in set(before) | set(spec) if before.get(k) != spec.get(k))
            differences.append(f"scenario {name}: " + ", ".join(
                f"{k} {_short(before.get(k))} -> {_short(spec.get(k))}" for k in keys))
    if differences:
        raise UserError(
            f"run folder {run_dir} holds a run of another configuration ("
            + "; ".join(differences)
            + "); pass another --out, or rerun with the recorded configuration"
        )


def read_run_info(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of ``run_dir`` (``{}`` when absent); a corrupt one is a UserError."""
    path = Path(run_dir) / RUN_INFO
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{path} is unreadable ({error}); delete it only if the folder holds "
                        f"a run of the same configuration") from None
    if not isinstance(info, dict):
        raise UserError(f"{path} is not a run description (a JSON object)")
    return info


def write_run_info(preset, run_dir: Path) -> None:
    """Record the grid, the command (no machine paths) and provenance in ``run.json``."""
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    info = {**grid_of(preset), **provenance(preset.device), "command": command}
    atomic_write_text(Path(run_dir) / RUN_INFO, json.dumps(info, indent=1, default=str) + "\n")


def check_writable(folder: str | os.PathLike, option: str = "--out") -> Path:
    """``folder`` (given as ``option``) is a folder this process can write into, or can be
    created as one; else one :class:`UserError` saying why. Creates nothing: commands call it
    before any work, so a bad ``--out`` never costs a finished run or grid its results."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{option} {folder} is a file, not a folder; pass a folder path (it is "
                        f"created if missing)")
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"{option} {folder} cannot be created: {existing} is a file; pass "
                        f"another {option}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{option} {folder} cannot be written: {existing} is read-only (a "
                        f"read-only file system or no permission); pass another {option} on a "
                        f"writable disk")
    return folder


def remove_stale_parts(run_dir: Path, log: Callable[[str], None]) -> int:
    """Delete the temporary ``*.part`` files a killed writer left in ``run_dir``; their count.

    Only call this while holding the run folder's lock: a live writer's temporary files
    would be deleted too.
    """
    parts = [p for p in Path(run_dir).rglob(f"*{PART_SUFFIX}") if p.is_file()]
    for part in parts:
        part.unlink(missing_ok=True)
    if parts:
        log(f"removed {len(parts)} stale temporary file(s) left by an interrupted run")
    return len(parts)


def json_ready(value: Any) -> Any:
    """A JSON-ready copy: tuples as lists, keys as text, other non-JSON values as their text."""
    return json.loads(json.dumps(value, default=str))


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."
