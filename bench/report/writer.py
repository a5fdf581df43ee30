"""Writing a report folder (:func:`write_report`); what it holds and reads: :mod:`bench.report`."""


from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from bench.records import ARCHIVE, load_records, read_archive, records_frame, write_archive
from bench.report.aggregate import aggregate
from bench.report.paired import (
    CLAIMS,
    SUMMARY,
    claims_for_report,
    claims_latex,
    claims_markdown,
)
from bench.report.tables import build_tables, table_latex, table_markdown
from rvqvae.errors import UserError

REPORT_MARKER = ".rvqvae-report"


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *,
                 figures: bool = True, reference: str | None = None,
                 primary: list[str] | None = None) -> Path:
    """Write the report of ``run_dir`` (or of a records ``.json``/``.csv`` file) into ``out``
    (default ``run_dir/report``, or ``<file stem>_report`` beside a file); return ``out``.
    ``reference``: the model the claims table compares every other model with (``None``: ``vqvae``
    when the run has it, else no claims table, with a note); ``primary``: fnmatch patterns of
    the metrics whose claims get verdicts (default: the catalog's primary metrics).

    Guarantees: ``out`` is replaced only when the whole report was written (an earlier report
    there is swapped out, never mixed with the new one); a folder that is not a report is never
    overwritten. Raises :class:`UserError` for a folder without records, mixed protocols, or a
    ``reference`` that is not in the run.
    """
    from bench.report.figures import write_figures
    from bench.report.index import AGGREGATE_CSV, TABLES, index_markdown

    run_dir = Path(run_dir)
    if out is None:  # a records file (.json / .csv) gets a sibling folder
        is_dir = run_dir.is_dir()
        out = run_dir / "report" if is_dir else run_dir.with_name(f"{run_dir.stem}_report")
    out = Path(out)
    rows = load_records(run_dir)
    records = records_frame(rows)
    if records.empty:
        raise UserError(f"{run_dir} holds no records yet; run 'rvqvae-bench run' first")
    run_info = _run_info(run_dir)
    summary = _in_preset_order(aggregate(records), run_info)
    tables = build_tables(summary)
    claims, claims_summary, claims_note = claims_for_report(
        records, reference, list(pd.unique(summary["model"])), primary)
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        (stage / REPORT_MARKER).write_text("written by rvqvae-bench report\n")
        write_archive(stage / ARCHIVE, rows, run_info)
        summary.to_csv(stage / AGGREGATE_CSV, index=False)
        (stage / TABLES).mkdir()
        for table in tables:
            (stage / TABLES / f"{table.name}.md").write_text(table_markdown(table))
            (stage / TABLES / f"{table.name}.tex").write_text(table_latex(table))
        if claims is not None:
            claims.to_csv(stage / TABLES / f"{CLAIMS}.csv", index=False)
            claims_summary.to_csv(stage / TABLES / f"{SUMMARY}.csv", index=False)
            (stage / TABLES / f"{CLAIMS}.md").write_text(claims_markdown(claims, claims_summary))
            (stage / TABLES / f"{CLAIMS}.tex").write_text(claims_latex(claims))
        drawn, skipped = write_figures(records, summary, run_dir, stage) if figures else ([], [])
        (stage / "README.md").write_text(
            index_markdown(run_dir, records, summary, tables, drawn, skipped, run_info,
                           claims=claims, claims_summary=claims_summary,
                           claims_note=claims_note))
        _swap_into_place(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out


def _run_info(run_dir: Path) -> dict:
    """``run_dir/run.json`` as the runner wrote it (preset, command, provenance), or the run of
    a records archive, or ``{}``."""
    if run_dir.is_file() and run_dir.name.endswith(".gz"):
        return read_archive(run_dir)[1]
    try:
        info = json.loads((run_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


def _in_preset_order(summary, run_info: dict):
    """Rows of models in the preset's order (tables list models this way); others after."""
    models = (run_info.get("preset") or {}).get("models") or []
    order = [m.get("label") or m.get("name") for m in models if isinstance(m, dict)]
    if not order:
        return summary
    rank = {name: i for i, name in enumerate(order)}
    ranks = summary["model"].map(lambda m: rank.get(m, len(rank)))
    return summary.iloc[ranks.argsort(kind="stable")].reset_index(drop=True)


def _check_replaceable(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                              and not (out / REPORT_MARKER).exists())):
        raise UserError(
            f"{out} exists and is not a report folder; pass another --out (a report only "
            f"replaces a folder it wrote itself)"
        )


def _swap_into_place(stage: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
