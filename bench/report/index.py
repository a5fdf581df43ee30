"""The report's ``README.md``: Markdown tables inline, figures linked, provenance listed.

Every link is relative to the report folder, so the folder can be moved, committed or zipped.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

from bench.metrics.health import is_degenerate
from bench.records import ARCHIVE, FAILED_CELL, cell_id
from bench.report.aggregate import present
from bench.report.figures import Figure
from bench.report.paired import CLAIMS, SUMMARY, claims_markdown
from bench.report.tables import Table, table_markdown

AGGREGATE_CSV = "aggregate.csv"
TABLES = "tables"


def index_markdown(
    run_dir: Path, records: pd.DataFrame, aggregate: pd.DataFrame, tables: list[Table],
    figures: list[Figure], skipped: list[str], run_info: dict | None = None, *,
    claims: pd.DataFrame | None = None, claims_summary: pd.DataFrame | None = None,
    claims_note: str = "",
) -> str:
    """The index page: summary, tables, paired claims (or the note why there are none), figures
    (PNG inline, PDF linked), skips, provenance."""
    cells = records.drop_duplicates(["scenario", "model", "seed"])
    failed = records[records["status"] == "failed"].drop_duplicates(["scenario", "model", "seed"])
    source = "Run folder" if run_dir.is_dir() else "Records file"
    lines = [
        f"# Report: {run_dir.name}", "",
        f"{source} `{run_dir}`: {len(records)} records from {len(cells)} cells "
        f"({len(failed)} failed), {aggregate['scenario'].nunique()} scenarios, "
        f"{aggregate['model'].nunique()} models. Generated "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
        machine_line(records), "",
        *uncommitted_lines(records),
        *health_lines(records),
        *completeness_lines(records, run_info or {}),
        f"Every cell aggregated over seeds, full precision, long format: "
        f"[{AGGREGATE_CSV}]({AGGREGATE_CSV}) (also the baseline format of `rvqvae-bench compare`). "
        f"Every record: [{ARCHIVE}]({ARCHIVE}) (`rvqvae-bench report {ARCHIVE}` rebuilds these "
        f"tables and claims from it alone).",
        "", "## Tables", "",
    ]
    if not tables:
        lines += ["No metric records to tabulate.", ""]
    for table in tables:
        lines += [table_markdown(table),
                  f"Files: [Markdown]({TABLES}/{table.name}.md) · "
                  f"[LaTeX]({TABLES}/{table.name}.tex)", ""]
    lines += ["## Paired claims", ""]
    if claims is None:
        lines += [claims_note or "No paired claims.", ""]
    else:
        lines += [claims_markdown(claims, claims_summary),
                  f"Files: [Markdown]({TABLES}/{CLAIMS}.md) · [LaTeX]({TABLES}/{CLAIMS}.tex) · "
                  f"[CSV]({TABLES}/{CLAIMS}.csv) · [summary CSV]({TABLES}/{SUMMARY}.csv)", ""]
    lines += ["## Figures", ""]
    for figure in figures:
        lines += [f"### {figure.title}", "", f"![{figure.title}]({figure.stem}.png)", "",
                  f"{figure.caption} [PDF]({figure.stem}.pdf)", ""]
    if skipped:
        lines += ["Figures not drawn (their inputs are missing):", ""]
        lines += [f"- {note}" for note in skipped] + [""]
    lines += ["## Provenance", ""] + _run_lines(run_info or {}) + provenance_lines(records)
    return "\n".join(lines) + "\n"


def machine_line(records: pd.DataFrame) -> str:
    """One line naming where and how the numbers were made: machine, seeds, torch, git."""
    def seen(values) -> str:
        return " / ".join(dict.fromkeys(str(v) for v in values if present(v))) or "not recorded"

    torch_versions = [json.loads(t).get("torch") if isinstance(t, str) else None
                      for t in records["versions"] if present(t)]
    seeds = sorted({int(s) for s in records["seed"].dropna()})
    shas = [str(sha)[:12] for sha in records["git_sha"] if present(sha)]
    return (f"Computed on `{seen(records['device'])}`; seeds {', '.join(map(str, seeds))}; "
            f"torch {seen(torch_versions)}; git `{seen(shas)}`.")


def uncommitted_lines(records: pd.DataFrame) -> list[str]:
    """A warning when any record was made from code with uncommitted changes."""
    dirty = sorted({str(sha)[:12] for sha in records["git_sha"]
                    if present(sha) and str(sha).endswith("-dirty")})
    cells = records[records["git_sha"].astype(str).str.endswith("-dirty")].drop_duplicates(
        ["scenario", "model", "seed"])
    if not dirty:
        return []
    return [f"**Made from code with uncommitted changes** ({len(cells)} cells, git "
            f"{', '.join(f'`{d}`' for d in dirty)}-dirty): no commit reproduces these numbers; "
            f"rerun from committed code before publishing them.", ""]


def health_lines(records: pd.DataFrame) -> list[str]:
    """Training health per model: ``vqvae: 1 of 6 seeds degenerate`` and each degenerate cell
    with its reasons; a note when the records predate the health check."""
    cells = records[records["model"].notna()].drop_duplicates(["scenario", "model", "seed"])
    cells = cells[~((cells["status"] == "failed") & (cells["metric"] == FAILED_CELL))]
    if cells.empty:
        return []
    known = cells[cells["health"].map(present)]
    if known.empty:
        return ["Training health: not recorded (records written before the health check).", ""]
    flagged = known[known["health"].map(is_degenerate)]
    counts = [f"{model}: {len(flagged[flagged['model'] == model])} of "
              f"{len(known[known['model'] == model])} cells degenerate"
              for model in pd.unique(known["model"])]
    lines = [f"Training health ({len(flagged)} of {len(known)} cells degenerate): "
             f"{'; '.join(counts)}.", ""]
    lines += [f"- degenerate: `{cell_id(str(row.scenario), str(row.model), int(row.seed))}`: "
              f"{str(row.health).partition(': ')[2]}" for row in flagged.itertuples()]
    return lines + ([""] if len(flagged) else [])


def completeness_lines(records: pd.DataFrame, run_info: dict) -> list[str]:
    """Whether every cell of the run's grid finished: a line, plus failed and missing cells.

    The grid comes from ``run.json``; without it only the recorded cells can be counted. A run
    with failed or missing cells is never called complete.
    """
    status: dict[str, str] = {}
    for row in records.itertuples():
        if present(row.cell_id):
            cell = str(row.cell_id)
        elif present(row.seed):
            cell = cell_id(str(row.scenario), str(row.model), int(row.seed))
        else:
            continue
        failed = row.status == "failed" and row.metric == FAILED_CELL
        status[cell] = "failed" if failed or status.get(cell) == "failed" else "ok"
    preset = run_info.get("preset") or {}
    try:
        grid = [cell_id(s, m.get("label") or m["name"], int(seed)) for s in preset["scenarios"]
                for seed in preset["seeds"] for m in preset["models"]]
    except (KeyError, TypeError, ValueError, AttributeError):
        grid = []
    failed = sorted(c for c, st in status.items() if st == "failed")
    finished = [c for c, st in status.items() if st == "ok" and (not grid or c in grid)]
    missing = [c for c in grid if c not in status]
    if not grid:
        head = (f"**{len(finished)} cells finished, {len(failed)} failed** (grid size unknown: "
                f"no run.json).")
    elif not failed and not missing:
        head = f"All {len(grid)} cells of the grid finished."
    else:
        head = (f"**Incomplete run: {len(finished)} of {len(grid)} cells finished**; rerun the "
                f"same command to retry failed cells and compute missing ones.")
    lines = [head, ""]
    errors = records[(records["status"] == "failed") & (records["metric"] == FAILED_CELL)]
    for cell in failed:
        error = next((str(e) for c, e in zip(errors["cell_id"], errors["error"], strict=True)
                      if str(c) == cell and present(e)), "")
        lines.append(f"- failed: `{cell}`" + (f": {error}" if error else ""))
    lines += [f"- missing: `{cell}`" for cell in missing]
    return lines + ([""] if failed or missing else [])


def provenance_lines(records: pd.DataFrame) -> list[str]:
    """Markdown bullets: the git SHAs, devices, package versions and config hashes seen."""
    cells = records.drop_duplicates(["scenario", "model", "seed"])
    lines = []
    for field, label in (("git_sha", "git SHAs"), ("device", "devices")):
        counts = Counter(str(v) for v in cells[field] if present(v))
        seen = ", ".join(f"`{value}` ({count} cells)" for value, count in counts.most_common())
        lines.append(f"- {label}: {seen or 'not recorded'}")
    versions: dict[str, set[str]] = defaultdict(set)
    for text in cells["versions"]:
        if present(text):
            parsed = json.loads(text) if isinstance(text, str) else text
            for package, version in parsed.items():
                versions[package].add(str(version))
    listed = "; ".join(f"{p} {' / '.join(sorted(v))}" for p, v in sorted(versions.items()))
    lines.append(f"- package versions: {listed or 'not recorded'}"
                 + (" (**several versions mixed**)" if any(len(v) > 1 for v in versions.values())
                    else ""))
    hashes: dict[str, set[str]] = defaultdict(set)
    for row in cells.itertuples():
        if present(row.config_hash):
            hashes[str(row.config_hash)].add(str(row.model))
    listed = ", ".join(f"`{h}` ({', '.join(sorted(m))})" for h, m in sorted(hashes.items()))
    lines.append(f"- config hashes: {listed or 'not recorded'}")
    protocols = sorted({str(p) for p in records["protocol"] if present(p)})
    lines.append("- metric protocols: " + (", ".join(f"`{p}`" for p in protocols) or "none"))
    return lines + [""]


def _run_lines(run_info: dict) -> list[str]:
    preset = run_info.get("preset") or {}
    lines = []
    if preset.get("name"):
        lines.append(f"- preset: `{preset['name']}`" + (f" ({preset['description']})"
                                                        if preset.get("description") else ""))
    if run_info.get("command"):
        lines.append(f"- command: `{run_info['command']}`")
    return lines


