"""``rvqvae-bench models``: the registered models with their scores and default options.

    rvqvae-bench models [NAME ...] [--json]

The text form is an aligned table (name, default score, scores, description) followed by each
model's default hyper-parameters; ``--json`` prints a list of objects with ``name``,
``description``, ``default_score``, ``score_names`` and ``defaults`` (the config dataclass's
fields; tuples become lists). Any option can be overridden by name, e.g. in a preset.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from typing import Any

from rvqvae.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these models")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    rows = model_rows(args.names)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(format_table(rows))
    return 0


def model_rows(names: list[str] | None = None) -> list[dict[str, Any]]:
    """One dict per registered model (all, or ``names`` in that order); unknown names raise
    :class:`UserError` listing the known ones."""
    import rvqvae.models  # noqa: F401  (importing the package registers the built-in models)
    from bench.grid.folder import json_ready
    from rvqvae.models.base import MODELS, default_config

    if not MODELS.names():
        raise UserError("no models are registered; is the rvqvae package installed completely?")
    rows = []
    for name in names or MODELS.names():
        entry = MODELS.entry(name)
        rows.append({
            "name": entry.name,
            "description": entry.description,
            "default_score": entry.obj.default_score,
            "score_names": list(entry.obj.score_names),
            "defaults": json_ready(default_config(entry.name)),
        })
    return rows


def format_table(rows: list[dict[str, Any]], width: int = 100) -> str:
    """An aligned table of the models, then one wrapped ``key=value`` block per model."""
    header = ("name", "default score", "scores", "description")
    table = [header] + [
        (r["name"], r["default_score"], ", ".join(r["score_names"]), r["description"])
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in table]
    for r in rows:
        options = ", ".join(f"{k}={_text(v)}" for k, v in r["defaults"].items())
        lines += ["", f"{r['name']} defaults:"]
        lines += textwrap.wrap(options, width=width, initial_indent="  ",
                               subsequent_indent="  ", break_on_hyphens=False)
    return "\n".join(lines)




def _text(value: Any) -> str:
    if isinstance(value, list):
        return "(" + ",".join(_text(v) for v in value) + ")"
    return f"{value:g}" if isinstance(value, float) else str(value)
