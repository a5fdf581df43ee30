"""The report's ``README.md``: Markdown tables inline, figures linked, provenance listed.

Every link is relative to the report folder, so the folder can be moved, committed or zipped.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

from bench.report.figures import Figure
from bench.report.paired import CLAIMS, claims_markdown
from bench.report.tables import Table, table_markdown

AGGREGATE_CSV = "aggregate.csv"
TABLES = "tables"


def index_markdown(
    run_dir: Path, records: pd.DataFrame, aggregate: pd.DataFrame, tables: list[Table],
    figures: list[Figure], skipped: list[str], run_info: dict | None = None, *,
    claims: pd.DataFrame | None = None, claims_note: str = "",
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
        f"Every cell aggregated over seeds, full precision, long format: "
        f"[{AGGREGATE_CSV}]({AGGREGATE_CSV}) (also the baseline format of `rvqvae-bench compare`).",
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
        lines += [claims_markdown(claims),
                  f"Files: [Markdown]({TABLES}/{CLAIMS}.md) · [LaTeX]({TABLES}/{CLAIMS}.tex) · "
                  f"[CSV]({TABLES}/{CLAIMS}.csv)", ""]
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
        return " / ".join(dict.fromkeys(str(v) for v in values if _present(v))) or "not recorded"

    torch_versions = [json.loads(t).get("torch") if isinstance(t, str) else None
                      for t in records["versions"] if _present(t)]
    seeds = sorted({int(s) for s in records["seed"].dropna()})
    shas = [str(sha)[:12] for sha in records["git_sha"] if _present(sha)]
    return (f"Computed on `{seen(records['device'])}`; seeds {', '.join(map(str, seeds))}; "
            f"torch {seen(torch_versions)}; git `{seen(shas)}`.")


def provenance_lines(records: pd.DataFrame) -> list[str]:
    """Markdown bullets: the git SHAs, devices, package versions and config hashes seen."""
    cells = records.drop_duplicates(["scenario", "model", "seed"])
    lines = []
    for field, label in (("git_sha", "git SHAs"), ("device", "devices")):
        counts = Counter(str(v) for v in cells[field] if _present(v))
        seen = ", ".join(f"`{value}` ({count} cells)" for value, count in counts.most_common())
        lines.append(f"- {label}: {seen or 'not recorded'}")
    versions: dict[str, set[str]] = defaultdict(set)
    for text in cells["versions"]:
        if _present(text):
            parsed = json.loads(text) if isinstance(text, str) else text
            for package, version in parsed.items():
                versions[package].add(str(version))
    listed = "; ".join(f"{p} {' / '.join(sorted(v))}" for p, v in sorted(versions.items()))
    lines.append(f"- package versions: {listed or 'not recorded'}"
                 + (" (**several versions mixed**)" if any(len(v) > 1 for v in versions.values())
                    else ""))
    hashes: dict[str, set[str]] = defaultdict(set)
    for row in cells.itertuples():
        if _present(row.config_hash):
            hashes[str(row.config_hash)].add(str(row.model))
    listed = ", ".join(f"`{h}` ({', '.join(sorted(m))})" for h, m in sorted(hashes.items()))
    lines.append(f"- config hashes: {listed or 'not recorded'}")
    protocols = sorted({str(p) for p in records["protocol"] if _present(p)})
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


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and value != value) and (
        str(value).strip() != "")
