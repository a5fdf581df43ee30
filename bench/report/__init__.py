"""``rvqvae-bench report``: tables (Markdown, LaTeX, CSV) and figures from a run folder.

>>> write_report("runs/quick")            # -> runs/quick/report/README.md and friends

(:func:`write_report` lives in :mod:`bench.report.writer`.)

What a report folder holds (``RUN_DIR/report`` unless ``out`` is given):

- ``README.md``: the index: every Markdown table inline, every figure linked, provenance;
- ``aggregate.csv``: one row per (scenario, model, metric), columns
  :data:`~bench.report.aggregate.AGGREGATE_COLUMNS`, full precision: the long-format results and
  the compact baseline format ``rvqvae-bench compare`` reads;
- ``tables/<family>__<setting>.md|.tex``: one table per metric family (generation, detection,
  reconstruction + codebook, kernel, training) and setting; layout in :mod:`bench.report.tables`;
- ``tables/claims.md|.tex|.csv``: every model against a reference model (default ``vqvae``),
  paired by seed: mean difference, bootstrap interval, permutation p-value, wins/ties/losses and a
  verdict (:mod:`bench.report.paired`); skipped with a note when the default reference is not in
  the run;
- ``figures/*.png|.pdf``: see :mod:`bench.report.figures`.

What it reads from ``RUN_DIR`` (the contract with the runner):

- ``cells/<cell_id>.json``: the records (:mod:`bench.records`); a cell that crashed writes one
  failed record with metric ``cell`` (or none): it shows as failed under every metric of its
  scenario;
- ``run.json`` (optional): the preset and command of the run, shown in the index;
- ``cells/<cell_id>/`` (optional, each file may be missing; its figure is then skipped with a note):
  - ``samples.pt``: float tensor N x C x H x W in [0, 1], the model's first generated samples
    (64 are shown; ``torch.save``), or ``samples.png``: an image of such a grid;
  - ``scores.pt``: ``{"transductive": {"is_outlier": bool (N,), <score name>: float (N,), ...},
    "inductive": {"is_outlier": bool (M,), <score name>: float (M,), ...}}`` (either mode may be
    absent; higher score = more outlying; plain tensors, loadable with ``weights_only=True``);
  - ``history.json``: a list of per-epoch dicts with at least ``epoch`` and ``loss``; the split
    figure reads ``split_auroc``, ``split_precision``, ``split_recall`` where present.

Records of one cell with different ``protocol`` JSON are never averaged: a
:class:`~rvqvae.errors.UserError` names the cell and the keys that differ. Output is atomic: the
report is built in a temporary folder beside ``out`` and renamed into place.
"""

from __future__ import annotations

from bench.report.aggregate import AGGREGATE_COLUMNS, aggregate
from bench.report.paired import paired_claims
from bench.report.tables import Table, build_tables, format_cell, table_latex, table_markdown
from bench.report.writer import REPORT_MARKER, write_report

__all__ = [
    "AGGREGATE_COLUMNS", "REPORT_MARKER", "Table", "aggregate", "build_tables", "format_cell",
    "paired_claims", "table_latex", "table_markdown", "write_report",
]
