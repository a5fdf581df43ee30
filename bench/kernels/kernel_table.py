"""Write a kernel benchmark: JSON (rows + provenance), CSV, a Markdown table, a figure and the
result records (:mod:`bench.kernels.kernel_records`)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd

from bench.cache import atomic_path, atomic_write_text
from bench.kernels.kernel_records import write_records
from bench.report.tables import frame_markdown

CASE = ["n", "k", "d", "dtype", "distance", "contender"]
TABLE_COLUMNS = {
    "n": "N", "k": "K", "d": "D", "dtype": "dtype", "distance": "distance",
    "contender": "contender", "vectors_per_s": "M vec/s", "iqr_pct": "IQR %",
    "gflops": "GFLOP/s", "ratio_faiss": "x FAISS", "pct_gemm": "% GEMM", "agree": "agree",
    "compile_s": "first call +s", "repeats": "runs", "rows_timed": "rows timed",
    "not_like_for_like": "not like for like", "busy": "busy (not trustworthy)",
}


def results_table(rows: list[dict]) -> pd.DataFrame:
    """The human table: one line per (case, contender), the median over repeats of each rate
    and same-repeat ratio (``agree``: the worst repeat; first-call cost: the largest, i.e. the
    first repeat's), rounded for reading."""
    frame = pd.DataFrame(rows)
    if "repeat" not in frame.columns:
        frame["repeat"] = 0
    if "busy" not in frame.columns:
        frame["busy"] = ""
    frame["busy"] = frame["busy"].fillna("")
    frame["iqr_pct"] = 100 * frame["iqr_s"] / frame["median_s"]
    frame["vectors_per_s"] = frame["vectors_per_s"] / 1e6
    medians = ["vectors_per_s", "iqr_pct", "gflops", "ratio_faiss", "pct_gemm"]
    table = frame.groupby(CASE, sort=False, dropna=False).agg(
        **{name: (name, "median") for name in medians},
        compile_s=("compile_s", "max"),  # paid once per process: the first repeat's
        agree=("agree", "min"), repeats=("repeat", "nunique"),
        rows_timed=("rows_timed", "first"), not_like_for_like=("not_like_for_like", "first"),
        busy=("busy", lambda marks: "; ".join(dict.fromkeys(m for m in marks if m))),
    ).reset_index()
    table = table[list(TABLE_COLUMNS)].rename(columns=TABLE_COLUMNS)
    return table.round({"M vec/s": 3, "IQR %": 1, "GFLOP/s": 1, "x FAISS": 2, "% GEMM": 1,
                        "agree": 4, "first call +s": 3})


def write_outputs(rows: list[dict], meta: dict, out_dir: str | Path) -> list[Path]:
    """``kernels.json``, ``kernels.csv``, ``kernels.md``, ``kernels.png`` and the records
    (``cells/``) under ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = results_table(rows)
    written = [
        atomic_write_text(out_dir / "kernels.json",
                          json.dumps({"meta": meta, "rows": rows}, indent=2, default=str)),
        atomic_write_text(out_dir / "kernels.csv", pd.DataFrame(rows).to_csv(index=False)),
        atomic_write_text(out_dir / "kernels.md", markdown_report(table, meta)),
    ]
    figure = out_dir / "kernels.png"
    if _plot(rows, meta, figure):
        written.append(figure)
    return written + write_records(rows, meta, out_dir)


def markdown_report(table: pd.DataFrame, meta: dict) -> str:
    lines = [
        "# Nearest-codeword search throughput",
        "",
        f"- device: {meta['device']}; threads: {meta['threads']}; grid: {meta['grid']}; "
        f"repeats: {meta['repeats']}",
        f"- git: {meta['git_sha']}; {_versions(meta['versions'])}",
        f"- command: `{meta['command']}`",
        f"- `auto` backend on this device: `{meta['auto_backend']}`",
        "- rate = rows timed / median seconds; GFLOP/s counts 2·N·K·D; `x FAISS` and `% GEMM` "
        "compare with FAISS and with the same-shape `x @ e.T` timed in the same repeat; each "
        "value is the median over the repeats (`runs`); `agree` = fraction of checked rows "
        "whose codeword is a true nearest one (near-tie tolerance, worst repeat); "
        "`first call +s` = first call minus a timed call, the largest over repeats (compilation "
        "for `compiled`, kernel build and blocking measurement for `fused`/`auto` when not "
        "cached on the machine yet), never part of a rate; `not like for like` says why a "
        "row's `x FAISS` compares different work; `busy` marks a row whose timing spread "
        "(IQR) was high or whose same-shape GEMM ran far below this machine's recent rate: "
        "the machine was loaded, its rates are not to be trusted.",
        "",
        _markdown(table),
        "",
    ]
    return "\n".join(lines)


def _markdown(table: pd.DataFrame) -> str:
    return frame_markdown(table, lambda value: "" if pd.isna(value) else str(value))


def _versions(versions: dict) -> str:
    keys = ("torch", "faiss-cpu", "vector-quantize-pytorch", "triton")
    return ", ".join(f"{k} {versions[k]}" for k in keys if k in versions)


def _plot(rows: list[dict], meta: dict, path: Path) -> bool:
    """Throughput vs K per contender (float32, headline N and D), one panel per distance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = pd.DataFrame(rows)
    frame = frame[(frame["dtype"] == "float32") & (frame["d"] == 64)]
    if frame["k"].nunique() < 2:
        return False
    frame = frame.assign(mvec=frame["vectors_per_s"] / 1e6)
    grid = sns.relplot(data=frame, x="k", y="mvec", hue="contender", style="kind", col="distance",
                       kind="line", markers=True, dashes=True, height=3.6, aspect=1.2)
    ks = sorted(frame["k"].unique())
    grid.set(xscale="log", yscale="log", xlabel="codebook size K",
             ylabel="million vectors / s")
    for axis in grid.axes.flat:
        axis.set_xticks(ks, [str(k) for k in ks])
        axis.minorticks_off()
    grid.figure.suptitle(f"N={frame['n'].iloc[0]}, D=64, float32 — {meta['device']}", y=1.03,
                         fontsize=9)
    buffer = io.BytesIO()
    grid.figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(grid.figure)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return True
