"""Paper tables from the aggregate: one table per metric family and setting.

Layout (what a paper's results table looks like): rows are models; columns are grouped by
metric, then by contamination epsilon (records without an epsilon, e.g. kernel timings, get one
column per scenario). A cell reads ``12.30 ± 0.40 (n=3)``: the mean and the sample standard
deviation over seeds, with the number of seeds that produced a value (``n=1`` shows the value
alone). The best mean of each column is bold (all of them on a tie), using the metric's
direction from :mod:`bench.metrics.catalog` (no bold when fewer than two models have a value,
when they all tie, or when the direction is unknown). ``n/a`` marks an undefined value and
``failed`` a cell whose every seed failed, each explained in the notes under the table; ``†``
marks a mean over fewer seeds because some failed; ``–`` marks a model not run on that column.

Markdown shows one sub-table per metric (readable in a browser); LaTeX shows the whole family as
one booktabs table with a two-level header (``Styler.to_latex(hrules=True)``, bold via
``\\textbf``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from bench.metrics.catalog import TABLES, table_of

ARROWS = {"lower": "↓", "higher": "↑", "": ""}
LATEX_ARROWS = {"lower": r" $\downarrow$", "higher": r" $\uparrow$", "": ""}
MISSING = "–"
PARTIAL = "†"


@dataclass(frozen=True)
class Table:
    """One rendered-ready table: cell texts and bold flags share index (models) and columns."""

    name: str  # file stem, e.g. ``generation__mnist+fmnist`` (safe: :func:`file_stem`)
    title: str
    setting: str
    text: pd.DataFrame  # str cells; columns MultiIndex (metric, column key)
    bold: pd.DataFrame  # bool, same shape
    directions: dict[str, str]  # metric -> lower | higher | ''
    column_kind: str  # "epsilon" (column keys are epsilon values) or "scenario"
    notes: tuple[str, ...]


def build_tables(aggregate: pd.DataFrame) -> list[Table]:
    """Every table the aggregate fills, in the catalog's ``TABLES`` order then setting order
    (each metric's table comes from its catalog entry)."""
    tables = []
    table_of_row = aggregate["metric"].map(table_of)
    stems: set[str] = set()
    for group, title in TABLES.items():
        part = aggregate[table_of_row == group]
        for setting in pd.unique(part["setting"]):
            rows = part[part["setting"] == setting]
            name = unique_stem(file_stem(f"{group}__{setting}"), stems)
            tables.append(_table(name, f"{title} — {setting}", setting, rows))
    return tables


def file_stem(text: str) -> str:
    """``text`` safe as a file name: characters other than letters, digits and ``._-+@``
    become ``-`` (a scenario name from a records file may hold ``/`` or anything else)."""
    return "".join(c if c.isalnum() or c in "._-+@" else "-" for c in str(text))


def unique_stem(stem: str, taken: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``... when names made safe collide; adds it to ``taken``."""
    unique, number = stem, 1
    while unique in taken:
        number += 1
        unique = f"{stem}-{number}"
    taken.add(unique)
    return unique


def format_cell(mean: float, std: float, n: int) -> str:
    """``12.30 ± 0.40 (n=3)``: std to two significant digits, the mean to the same decimals.

    With one seed (or zero spread) the mean gets four significant digits: ``12.30 (n=1)``.
    """
    if n > 1 and std > 0 and math.isfinite(std):
        decimals = decimals_for(std, significant=2)
        return f"{mean:.{decimals}f} ± {std:.{decimals}f} (n={n})"
    return f"{mean:.{decimals_for(mean, significant=4)}f} (n={n})"


def frame_markdown(frame: pd.DataFrame, cell: Callable[[object], str] = str) -> str:
    """A plain frame as a Markdown table (header, rule, one line per row), each value written
    by ``cell``."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def three_decimals(value: object) -> str:
    """A float to 3 decimals, anything else as its text (the study tools' tables)."""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def table_markdown(table: Table) -> str:
    """The table as Markdown: a heading, one sub-table per metric, then the notes."""
    lines = [f"### {table.title}", "", _LEGEND, ""]
    models = list(table.text.index)
    for metric in pd.unique(table.text.columns.get_level_values(0)):
        direction = table.directions[metric]
        said = f" {ARROWS[direction]} {direction} is better" if direction else ""
        lines += [f"**{metric}**{said}", ""]
        keys = [k for m, k in table.text.columns if m == metric]
        lines.append("| model | " + " | ".join(_label(table, k) for k in keys) + " |")
        lines.append("|---|" + "---:|" * len(keys))
        for model in models:
            cells = []
            for key in keys:
                text = table.text.loc[model, (metric, key)]
                cells.append(f"**{text}**" if table.bold.loc[model, (metric, key)] else text)
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines.append("")
    if table.notes:
        lines += ["Notes:", ""] + [f"- {note}" for note in table.notes] + [""]
    return "\n".join(lines)


def table_latex(table: Table) -> str:
    """The table as a LaTeX ``table`` (booktabs rules, two-level header, ``\\textbf`` best)."""
    text = table.text.map(_latex_cell)
    text.columns = pd.MultiIndex.from_tuples(
        [(latex_escape(m) + LATEX_ARROWS[table.directions[m]], _label(table, k, latex=True))
         for m, k in table.text.columns]
    )
    text.index = [latex_escape(m) for m in text.index]
    bold = pd.DataFrame(
        table.bold.to_numpy(), index=text.index, columns=text.columns
    ).replace({True: "textbf: --rwrap;", False: ""})
    styler = text.style.apply(lambda _: bold, axis=None)
    latex = styler.to_latex(
        hrules=True, multicol_align="c", column_format="l" + "r" * text.shape[1],
        caption=latex_escape(table.title) + r": mean $\pm$ sample std over seeds (n seeds); "
        r"best per column in bold.",
        environment="table", position_float="centering", label=f"tab:{file_stem(table.name)}",
    )
    if table.notes:
        notes = "\n".join(r"\par " + _latex_cell(note) for note in table.notes)
        latex = latex.replace(r"\end{table}", "{\\footnotesize\n" + notes + "\n}\n\\end{table}")
    return latex


_LEGEND = (
    "Mean ± sample std over seeds (n = seeds with a value); **bold** = best per column "
    "(↓ lower / ↑ higher is better); n/a = undefined, failed = every seed failed, "
    f"{PARTIAL} = some seeds failed, {MISSING} = not run."
)


def _table(name: str, title: str, setting: str, rows: pd.DataFrame) -> Table:
    column_kind = "epsilon" if rows["epsilon"].notna().all() else "scenario"
    rows = rows.assign(key=rows["epsilon"].map(lambda e: f"{e:g}")
                       if column_kind == "epsilon" else rows["scenario"])
    models = list(pd.unique(rows["model"]))
    metrics = list(pd.unique(rows["metric"]))
    columns = []
    for metric in metrics:
        keys = rows.loc[rows["metric"] == metric, ["epsilon", "key"]].drop_duplicates("key")
        if column_kind == "epsilon":
            keys = keys.sort_values("epsilon")
        columns += [(metric, key) for key in keys["key"]]
    index = pd.MultiIndex.from_tuples(columns)
    text = pd.DataFrame(MISSING, index=models, columns=index, dtype=object)
    bold = pd.DataFrame(False, index=models, columns=index)
    notes: dict[tuple, dict[str, list[str]]] = {}  # note head -> column label -> models
    for row in rows.itertuples(index=False):
        text.loc[row.model, (row.metric, row.key)] = _cell_text(row)
        head = _note_head(row)
        if head:
            label = f"ε={row.key}" if column_kind == "epsilon" else row.key
            notes.setdefault(head, {}).setdefault(label, []).append(row.model)
    directions = {m: rows.loc[rows["metric"] == m, "direction"].iloc[0] for m in metrics}
    for metric, key in columns:
        column = rows[(rows["metric"] == metric) & (rows["key"] == key) & (rows["status"] == "ok")]
        if directions[metric] and len(column) > 1:
            best = column["mean"].min() if directions[metric] == "lower" else column["mean"].max()
            winners = column.loc[[math.isclose(v, best) for v in column["mean"]], "model"]
            if len(winners) < len(column):  # a column where every model ties has no best
                bold.loc[list(winners), (metric, key)] = True
    merged = tuple(
        f"{head[0]} at " + "; ".join(
            f"{label} ({'all models' if len(where) == len(models) > 1 else ', '.join(where)})"
            for label, where in columns_of.items()) + f": {head[1]}"
        for head, columns_of in notes.items()
    )
    return Table(name, title, setting, text, bold, directions, column_kind, merged)


def _cell_text(row) -> str:
    if row.status == "ok":
        return format_cell(row.mean, row.std, row.n) + (PARTIAL if row.n_failed else "")
    return "failed" if row.status == "failed" else "n/a"


def _note_head(row) -> tuple[str, str] | None:
    """(what, why) the notes say about a cell; cells with the same head share one note line."""
    reason = row.note or "no reason recorded"
    if row.status == "undefined":
        return f"n/a in {row.metric}", reason
    if row.status == "failed":
        return f"failed in {row.metric}", reason
    if row.n_failed:
        total = row.n + row.n_failed + row.n_undefined
        return f"{PARTIAL} in {row.metric}", f"{row.n_failed} of {total} seeds failed ({reason})"
    return None


def _label(table: Table, key: str, latex: bool = False) -> str:
    if table.column_kind == "epsilon":
        return (r"$\varepsilon$=" if latex else "ε=") + key
    return latex_escape(key) if latex else key


def _latex_cell(text: str) -> str:
    text = latex_escape(text)
    return (text.replace("±", r"$\pm$").replace(PARTIAL, r"$^\dagger$")
            .replace("ε", r"$\varepsilon$").replace(MISSING, "--"))


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped (and an em dash as ``---``)."""
    for char in "\\&%$#_{}":
        text = text.replace(char, "\\" + char if char != "\\" else r"\textbackslash{}")
    return text.replace("—", "---")


def decimals_for(value: float, significant: int) -> int:
    """Decimal places that show ``value`` to ``significant`` significant digits."""
    if value == 0 or not math.isfinite(value):
        return significant - 1
    exponent = int(f"{value:.{significant - 1}e}".split("e")[1])  # after rounding: 9.99e-5 -> -4
    return min(8, max(0, significant - 1 - exponent))
