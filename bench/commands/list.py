"""``rvqvae-bench list``: every registry's entries with the file that defines each.

    rvqvae-bench list [KIND ...] [--json]

Kinds (:data:`KINDS`): models, presets, scenario-families, scenarios, metric-groups,
metric-families, quantizer-backends, kernel-grids, feature-extractors, datasets, executors.
One pattern
for all of them: each is a :class:`rvqvae.registry.Registry`, and each entry records where it
was defined and whether it is built in or came from a plugin (:mod:`bench.plugins`).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
from pathlib import Path

from rvqvae.errors import UserError

KINDS = {  # kind -> (module, registry attribute)
    "models": ("rvqvae.models", "MODELS"),
    "presets": ("bench.presets", "PRESETS"),
    "scenario-families": ("bench.scenarios", "FAMILIES"),
    "scenarios": ("bench.scenarios", "SCENARIOS"),
    "metric-groups": ("bench.metrics.evaluate", "METRICS"),
    "metric-families": ("bench.metrics.catalog", "METRIC_FAMILIES"),
    "quantizer-backends": ("rvqvae.quantize", "BACKENDS"),
    "kernel-grids": ("bench.kernels.grid", "KERNEL_GRIDS"),
    "feature-extractors": ("bench.metrics.extractors", "EXTRACTORS"),
    "datasets": ("bench.data.datasets", "DATASETS"),
    "executors": ("bench.grid.executors", "EXECUTORS"),
}
ROOT = Path(__file__).resolve().parents[2]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kinds", nargs="*", metavar="KIND",
                        help=f"only these registries: {', '.join(KINDS)} (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    unknown = [kind for kind in args.kinds if kind not in KINDS]
    if unknown:
        raise UserError(f"registry {unknown[0]!r} is unknown; known: {', '.join(KINDS)}")
    listing = {kind: registry_rows(kind) for kind in args.kinds or KINDS}
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for kind, rows in listing.items():
        print(f"{kind} ({len(rows)})")
        width = max((len(row["name"]) for row in rows), default=0)
        for row in rows:
            print(f"  {row['name']:<{width}}  [{row['origin']}] {row['file']}  "
                  f"{row['description']}")
    return 0


def registry_rows(kind: str) -> list[dict[str, str]]:
    """``name``, ``origin`` (``built-in``, ``plugin NAME``, ...), ``file`` (relative to the
    checkout where possible) and ``description``."""
    from bench.plugins import origin

    module, attribute = KINDS[kind]
    registry = getattr(importlib.import_module(module), attribute)
    return [{"name": entry.name, "origin": origin(entry.source),
             "file": source_file(entry.source), "description": entry.description}
            for entry in registry.entries()]


def source_file(source: str) -> str:
    """A module name as its file (``bench/presets/builtin.py``); a path as given."""
    if not source or "/" in source or source.endswith(".toml"):
        return source
    spec = importlib.util.find_spec(source)
    if spec is None or not spec.origin:
        return source
    origin = Path(spec.origin)
    try:
        return origin.relative_to(ROOT).as_posix()
    except ValueError:
        return str(origin)
