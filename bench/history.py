"""A results history, the way asv tracks speed across commits, for every metric.

A *point* is one result set (an aggregate: mean, seed spread and n per scenario, model and
metric) with a label, a commit and a date. Points come from a file's versions in git history
(:func:`points_from_git`, e.g. ``results/baselines/ci.csv`` at every commit that changed it),
from result sets given in order (:func:`point_from_source`), or from a history file that the
CI gate appends to (``compare --history FILE``, :func:`append_point`). Between successive
points the gate's own rule (:func:`bench.compare.compare`) says which metrics changed:
:func:`history_table` carries that outcome on each row (``regressed``, ``improved``,
``unchanged``, ``protocol``, ``new``...), and :func:`bench.report.figures.history_figure`
marks the flagged commits on the metric's trend.
"""

from __future__ import annotations

import io
import math
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.compare import KEY, compare, complete_aggregate, load_cells
from bench.metrics.catalog import metric_family
from rvqvae.errors import UserError

POINT_COLUMNS = ("point", "label", "commit", "date")
HISTORY_COLUMNS = (*POINT_COLUMNS, "scenario", "model", "metric", "direction", "status", "mean",
                   "std", "n", "outcome")
VALUE_COLUMNS = ("scenario", "model", "metric", "direction", "status", "mean", "std", "n",
                 "n_failed", "n_undefined", "protocol")


@dataclass(frozen=True)
class Point:
    """One result set of the history."""

    label: str
    commit: str
    date: str
    cells: pd.DataFrame  # an aggregate (bench.report.aggregate.AGGREGATE_COLUMNS)


def points_from_git(path: str, *, repo: str | Path = ".", since: str | None = None
                    ) -> list[Point]:
    """``path`` (a results file tracked by git) at each commit that changed it, oldest first;
    ``since``: only commits after this revision."""
    revisions = f"{since}..HEAD" if since else "HEAD"
    log = _git(repo, "log", "--reverse", "--format=%H %cs", revisions, "--", path)
    points = []
    for line in log.splitlines():
        sha, date = line.split()
        text = _git(repo, "show", f"{sha}:{path}")
        cells = complete_aggregate(pd.read_csv(io.StringIO(text)), Path(f"{sha[:9]}:{path}"))
        points.append(Point(sha[:9], sha, date, cells))
    if not points:
        raise UserError(f"git has no commit that changed {path} in {repo}"
                        + (f" after {since}" if since else "") + "; give a tracked results file")
    return points


def point_from_source(source: str) -> Point:
    """A run folder, report folder or results file as one point, labelled by its path."""
    return Point(str(source), "", "", load_cells(source))


def points_from_file(path: str | Path) -> list[Point]:
    """The points of a history file written by :func:`append_point`, in order."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"history file {path} does not exist; 'compare --history {path}' "
                        f"starts one")
    frame = pd.read_csv(path, dtype={"commit": str, "label": str, "date": str})
    missing = [c for c in (*POINT_COLUMNS, "mean") if c not in frame.columns]
    if missing:
        raise UserError(f"{path} is not a history file (no {', '.join(missing)} column)")
    points = []
    for _, rows in frame.groupby("point", sort=True):
        first = rows.iloc[0]
        cells = complete_aggregate(rows.drop(columns=list(POINT_COLUMNS)).copy(), path)
        points.append(Point(str(first["label"]), _blank(first["commit"]), _blank(first["date"]),
                            cells))
    return points


def append_point(path: str | Path, point: Point) -> None:
    """Add ``point`` at the end of the history file ``path`` (created if absent)."""
    from bench.cache import atomic_write_text

    path = Path(path)
    old = pd.read_csv(path, dtype=str) if path.is_file() else pd.DataFrame()
    number = int(pd.to_numeric(old["point"]).max()) + 1 if len(old) else 0
    rows = point.cells[list(VALUE_COLUMNS)].copy()
    for column, value in zip(POINT_COLUMNS, (number, point.label, point.commit, point.date),
                             strict=True):
        rows.insert(POINT_COLUMNS.index(column), column, value)
    frame = pd.concat([old, rows.astype(str)], ignore_index=True) if len(old) else rows
    atomic_write_text(path, frame.to_csv(index=False))


def history_table(points: list[Point], metrics: list[str] | None = None) -> pd.DataFrame:
    """Every point's rows (``HISTORY_COLUMNS``) for the metrics matching ``metrics`` (regular
    expressions, whole name; None: the catalog's primary metrics), with the gate's outcome
    against the point before (``first`` for the first point)."""
    if not points:
        raise UserError("a history needs at least one result set")
    wanted = [re.compile(pattern) for pattern in metrics] if metrics else None

    def chosen(metric: str) -> bool:
        if wanted is None:
            return metric_family(metric).primary
        return any(pattern.fullmatch(metric) for pattern in wanted)

    parts = []
    for number, point in enumerate(points):
        cells = point.cells[[chosen(m) for m in point.cells["metric"]]]
        if number == 0:
            outcomes = pd.Series("first", index=cells.index)
        else:
            result = compare(points[number - 1].cells, point.cells).set_index(KEY)["outcome"]
            outcomes = pd.Series([result.get(tuple(key), "new") for key in
                                  cells[KEY].itertuples(index=False)], index=cells.index)
        part = cells.assign(point=number, label=point.label, commit=point.commit,
                            date=point.date, outcome=outcomes)
        parts.append(part[list(HISTORY_COLUMNS)])
    table = pd.concat(parts, ignore_index=True)
    if table.empty:
        raise UserError("no metric of the history matches "
                        + (", ".join(metrics) if metrics else "the catalog's primary metrics"))
    return table


def history_markdown(table: pd.DataFrame) -> str:
    """One Markdown table per metric: rows (scenario, model), columns the points; a cell the
    gate flagged against the point before is marked ▲ (regressed) or ▼ (improved)."""
    marks = {"regressed": " ▲", "improved": " ▼", "protocol": " ≠"}
    labels = table.drop_duplicates("point").sort_values("point")["label"].tolist()
    parts = []
    for metric, rows in table.groupby("metric", sort=True):
        header = "| scenario | model | " + " | ".join(f"`{label}`" for label in labels) + " |"
        lines = [f"### {metric} ({rows['direction'].iloc[0]} is better)", "", header,
                 "|---|---|" + "---:|" * len(labels)]
        for (scenario, model), cell in rows.groupby(["scenario", "model"], sort=True):
            by_point = {int(r.point): r for r in cell.itertuples()}
            shown = [_shown(by_point.get(n), marks) for n in range(len(labels))]
            lines.append(f"| {scenario} | {model} | " + " | ".join(shown) + " |")
        parts.append("\n".join(lines))
    legend = ("Mean ± seed std per commit; ▲ the gate flagged a regression against the commit "
              "before, ▼ an improvement, ≠ a protocol change (not comparable); – absent.")
    return legend + "\n\n" + "\n\n".join(parts) + "\n"


def _shown(row, marks: dict[str, str]) -> str:
    if row is None:
        return "–"
    if pd.isna(row.mean):
        return str(row.status)
    spread = "" if pd.isna(row.std) or math.isnan(float(row.std)) else f" ± {float(row.std):.3g}"
    return f"{float(row.mean):.4g}{spread}{marks.get(row.outcome, '')}"


def _git(repo: str | Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                              timeout=120)
    except (OSError, subprocess.SubprocessError) as error:
        raise UserError(f"git {args[0]} failed in {repo}: {error}") from None
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["(no message)"])[0]
        raise UserError(f"git {args[0]} failed in {repo}: {first}")
    return done.stdout


def _blank(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
