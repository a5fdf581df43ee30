"""Report figures (seaborn; PNG for the index, PDF for papers), one set per setting.

From the records: FID/KID vs epsilon, outlier-mode rate vs epsilon and AUROC vs epsilon, one
point per model and epsilon at the mean over seeds with ±1 sample-std error bars.
From the per-cell files (``RUN_DIR/cells/<cell_id>/``, contract in :mod:`bench.report`): ROC
curves per scenario (``scores.pt``), a grid of generated samples per model and epsilon
(``samples.pt`` or ``samples.png``), training curves (``history.json``) and, for models whose
history records the per-epoch outlier split (RVQ-VAE: ``split_auroc``, ``split_precision``,
``split_recall``), split diagnostics: one line per seed, one column per scenario, so that a
split that inverts (AUROC below 0.5) is visible at a glance. ROC curves and
sample grids show the lowest seed that has the file. Whatever is missing is skipped with a note.

Figures are drawn on ``matplotlib.figure.Figure`` objects (no pyplot state, no global style):
the seaborn style applies only inside this module's ``with`` blocks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.metrics.catalog import FIGURE_TITLES, figure_of
from bench.report.aggregate import family_and_direction, setting_of
from bench.report.tables import ARROWS, file_stem

FIGURES = "figures"


@dataclass(frozen=True)
class Figure:
    """A written figure: ``stem`` (relative to the report folder) + ``.png`` / ``.pdf``."""

    stem: str
    title: str
    caption: str


def write_figures(
    records: pd.DataFrame, aggregate: pd.DataFrame, run_dir: Path, out_dir: Path
) -> tuple[list[Figure], list[str]]:
    """Draw every figure the inputs allow into ``out_dir/figures``; return (figures, skip notes)."""
    import seaborn as sns

    (out_dir / FIGURES).mkdir(parents=True, exist_ok=True)
    figures: list[Figure] = []
    skipped: list[str] = []
    ok = records[records["status"] == "ok"].assign(value=lambda f: f["value"].astype(float))
    ok = ok[pd.to_numeric(ok["epsilon"], errors="coerce").notna()]
    models = list(pd.unique(aggregate["model"]))
    palette = dict(zip(models, sns.color_palette(n_colors=max(len(models), 1)), strict=True))
    settings = pd.unique(aggregate.loc[aggregate["epsilon"].notna(), "setting"])
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.9):
        for setting in settings:
            rows = ok[ok["scenario"].map(setting_of) == setting]
            for kind, title, match in _VERSUS_EPSILON:
                metrics = [m for m in pd.unique(rows["metric"]) if match(m)]
                if not metrics:
                    skipped.append(f"{title} for {setting}: no such metric in the records")
                    continue
                figures.append(_versus_epsilon(
                    rows, metrics, aggregate, palette, out_dir, f"{kind}__{setting}",
                    f"{title} — {setting}"))
            cells = _cells(records[records["scenario"].map(setting_of) == setting], run_dir)
            for draw in (_roc_figures, _samples_figure, _training_figure, _split_figures):
                made, notes = draw(cells, setting, palette, out_dir)
                figures += made
                skipped += notes
    return figures, skipped


def _in_figure(kind: str) -> Callable[[str], bool]:
    return lambda metric: figure_of(metric) == kind


# figure -> title in the catalog; which metrics go in is each metric's catalog entry
_VERSUS_EPSILON = tuple((kind, title, _in_figure(kind)) for kind, title in FIGURE_TITLES.items())


def _versus_epsilon(rows, metrics, aggregate, palette, out_dir, stem, title) -> Figure:
    import seaborn as sns
    from matplotlib.figure import Figure as MplFigure

    figure = MplFigure(figsize=(4.4 * len(metrics) + 1.6, 3.6), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(metrics), squeeze=False)[0])
    for axis, metric in zip(axes, metrics, strict=True):
        data = rows[rows["metric"] == metric].assign(
            epsilon=lambda f: f["epsilon"].astype(float).map(lambda e: f"{e:g}"))
        order = sorted(pd.unique(data["epsilon"]), key=float)
        sns.pointplot(data=data, x="epsilon", y="value", hue="model", order=order,
                      hue_order=_present_models(palette, data),
                      palette=palette, errorbar="sd", capsize=0.08,
                      dodge=0.35 if data["model"].nunique() > 1 else False,
                      markers="o", markersize=5, linewidth=1.4, err_kws={"linewidth": 1.2},
                      ax=axis)
        direction = family_and_direction(metric)[1]
        axis.set_title(f"{metric} {ARROWS[direction]}", fontsize=10)
        axis.set_xlabel("contamination ε")
        axis.set_ylabel(metric)
        if axis is not axes[-1] and axis.get_legend() is not None:
            axis.get_legend().remove()
    if axes[-1].get_legend() is not None:
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    figure.suptitle(title, fontsize=11)
    counts = aggregate.loc[aggregate["metric"].isin(metrics) & (aggregate["n"] > 0), "n"]
    caption = (f"{title}: points are means over seeds, error bars ±1 sample std over seeds "
               f"({_n_text(counts)} per point; no bar when n = 1). ↓ lower / ↑ higher is better.")
    return _save(figure, out_dir, stem, title, caption)


def _roc_figures(cells, setting, palette, out_dir):
    from matplotlib.figure import Figure as MplFigure

    from bench.metrics.detection import roc_curve  # the curve the AUROC metric integrates

    figures, notes = [], []
    for scenario in pd.unique(cells["scenario"]):
        lowest = _lowest_seed_with(cells[cells["scenario"] == scenario], "scores.pt")
        if lowest.empty:
            notes.append(f"ROC curves for {scenario}: no scores.pt in its cells")
            continue
        curves: dict[str, list] = {}
        order = {model: i for i, model in enumerate(palette)}
        for cell in lowest.sort_values("model", key=lambda m: m.map(order)).itertuples():
            modes = load_scores(cell.folder / "scores.pt")
            for mode, data in modes.items():
                flags = np.asarray(data["is_outlier"], dtype=bool)
                if flags.all() or not flags.any():
                    continue
                for name, score in data.items():
                    if name != "is_outlier":
                        fpr, tpr, auc = roc_curve(score, flags)
                        curves.setdefault(mode, []).append(
                            (cell.model, name, cell.seed, fpr.numpy(), tpr.numpy(), auc))
        if not curves:
            notes.append(f"ROC curves for {scenario}: its scores.pt hold no outliers "
                         f"(or no inliers), so ROC is undefined")
            continue
        figure = MplFigure(figsize=(4.6 * len(curves) + 2.4, 4.2), layout="constrained")
        axes = figure.subplots(1, len(curves), squeeze=False)[0]
        styles = ["-", "--", ":", "-."]
        for axis, (mode, lines) in zip(axes, curves.items(), strict=True):
            names = list(dict.fromkeys(line[1] for line in lines))
            for model, name, _seed, fpr, tpr, auc in lines:
                axis.plot(fpr, tpr, color=palette.get(model), linewidth=1.4,
                          linestyle=styles[names.index(name) % len(styles)],
                          label=f"{model} · {name} (AUROC {auc:.3f})")
            axis.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
            axis.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false-positive rate (inliers)",
                     ylabel="true-positive rate (outliers)", title=f"{mode}")
            axis.legend(fontsize=7, loc="lower right")
        title = f"ROC curves — {scenario}"
        seeds = ", ".join(sorted({str(s) for s in lowest["seed"]}))
        caption = (f"{title}: outliers positive, higher score = more outlying; one curve per model "
                   f"and score, seed {seeds}; dotted diagonal = chance.")
        figures.append(_save(figure, out_dir, f"roc__{scenario}", title, caption))
    return figures, notes


def _samples_figure(cells, setting, palette, out_dir):
    from matplotlib.figure import Figure as MplFigure

    shown = pd.concat([_lowest_seed_with(cells, "samples.pt"),
                       _lowest_seed_with(cells, "samples.png")]).drop_duplicates(
        ["scenario", "model"])
    if shown.empty:
        return [], [f"sample grids for {setting}: no samples.pt or samples.png in its cells"]
    models = _present_models(palette, cells)
    epsilons = sorted(pd.unique(cells["epsilon"]))
    figure = MplFigure(figsize=(2.3 * len(epsilons) + 1.2, 2.3 * len(models)), layout="constrained")
    axes = figure.subplots(len(models), len(epsilons), squeeze=False)
    for row, model in enumerate(models):
        for col, epsilon in enumerate(epsilons):
            axis = axes[row][col]
            axis.set_xticks([])
            axis.set_yticks([])
            axis.grid(False)
            match = shown[(shown["model"] == model) & (shown["epsilon"] == epsilon)]
            if match.empty:
                axis.text(0.5, 0.5, "missing", ha="center", va="center", color="grey")
            else:
                axis.imshow(_sample_grid(match.iloc[0].folder), cmap="gray", vmin=0, vmax=1,
                            interpolation="nearest")
            if row == 0:
                axis.set_title(f"ε={epsilon:g}", fontsize=10)
            if col == 0:
                axis.set_ylabel(model, fontsize=10)
    title = f"Generated samples — {setting}"
    seeds = ", ".join(sorted({str(s) for s in shown["seed"]}))
    caption = (f"{title}: the first 64 samples of each model (rows) at each contamination ε "
               f"(columns), seed {seeds}.")
    return [_save(figure, out_dir, f"samples__{setting}", title, caption, dpi=110)], []


def _training_figure(cells, setting, palette, out_dir):
    import seaborn as sns
    from matplotlib.figure import Figure as MplFigure

    data = _history_rows(cells, ("loss",))
    if data.empty:
        return [], [f"training curves for {setting}: no history.json in its cells"]
    epsilons = sorted(pd.unique(data["epsilon"]))
    figure = MplFigure(figsize=(4.0 * len(epsilons) + 1.6, 3.4), layout="constrained")
    axes = figure.subplots(1, len(epsilons), squeeze=False, sharey=True)[0]
    for axis, epsilon in zip(axes, epsilons, strict=True):
        part = data[data["epsilon"] == epsilon]
        sns.lineplot(data=part, x="epoch", y="loss", hue="model", palette=palette,
                     hue_order=_present_models(palette, part), errorbar="sd", ax=axis)
        axis.set_title(f"ε={epsilon:g}", fontsize=10)
        if (data["loss"] > 0).all():
            axis.set_yscale("log")
        if axis is not axes[-1] and axis.get_legend() is not None:
            axis.get_legend().remove()
    if axes[-1].get_legend() is not None:
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    title = f"Training loss — {setting}"
    counts = data.groupby(["model", "epsilon"])["seed"].nunique()
    caption = (f"{title}: training loss per epoch (from history.json), line = mean over seeds, "
               f"band = ±1 sample std ({_n_text(counts)} per curve).")
    return [_save(figure, out_dir, f"training__{setting}", title, caption)], []


def _split_figures(cells, setting, palette, out_dir):
    """Per model whose history records the per-epoch split (RVQ-VAE): rows = split AUROC,
    precision and recall, columns = scenarios, one line per seed."""
    import seaborn as sns
    from matplotlib.figure import Figure as MplFigure
    from matplotlib.ticker import MaxNLocator

    data = _history_rows(cells, tuple(SPLIT_FIELDS))
    if data.empty:
        return [], [f"split diagnostics for {setting}: no history.json records a per-epoch split"]
    figures, notes = [], []
    for model in _present_models(palette, data):
        part = data[data["model"] == model].melt(
            id_vars=["scenario", "epsilon", "seed", "epoch"], var_name="quantity",
            value_vars=[f for f in SPLIT_FIELDS if f in data]).dropna(subset=["value"])
        if part.empty:
            notes.append(f"split diagnostics for {setting} / {model}: every split value is "
                         f"undefined (no outliers to find)")
            continue
        quantities = [f for f in SPLIT_FIELDS if f in set(part["quantity"])]
        scenarios = list(part.sort_values("epsilon", kind="stable")["scenario"].unique())
        part = part.assign(seed=part["seed"].map(lambda s: f"seed {s}"))
        seeds = sorted(part["seed"].unique())
        colours = dict(zip(seeds, sns.color_palette("colorblind", len(seeds)), strict=True))
        figure = MplFigure(figsize=(3.3 * len(scenarios) + 1.4, 2.2 * len(quantities) + 0.5),
                           layout="constrained")
        axes = figure.subplots(len(quantities), len(scenarios), squeeze=False, sharex=True,
                               sharey=True)
        for row, quantity in enumerate(quantities):
            for col, scenario in enumerate(scenarios):
                axis = axes[row][col]
                panel = part[(part["quantity"] == quantity) & (part["scenario"] == scenario)]
                if not panel.empty:
                    sns.lineplot(data=panel, x="epoch", y="value", hue="seed", hue_order=seeds,
                                 palette=colours, units="seed", estimator=None, marker="o",
                                 markersize=4, linewidth=1.4, ax=axis,
                                 legend=row == 0 and col == len(scenarios) - 1)
                if quantity == "split_auroc":
                    axis.axhline(0.5, color="grey", linewidth=0.9, linestyle=":")
                axis.set(ylim=(-0.03, 1.03), ylabel=SPLIT_FIELDS[quantity] if col == 0 else "",
                         xlabel="epoch" if row == len(quantities) - 1 else "")
                axis.xaxis.set_major_locator(MaxNLocator(integer=True))
                if row == 0:
                    axis.set_title(scenario, fontsize=10)
        if axes[0][-1].get_legend() is not None:
            sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
        title = f"Outlier split per epoch — {model}, {setting}"
        figure.suptitle(title, fontsize=11)
        hidden = sorted(set(data.loc[data["model"] == model, "scenario"]) - set(scenarios))
        caption = (f"{title} (from history.json; the true flags only monitor the split, they "
                   f"never reach training): AUROC of the split score, precision and recall of the "
                   f"chosen outlier set against the true outliers; one line per seed, one column "
                   f"per scenario. AUROC below the dotted 0.5 line = an inverted split (the "
                   f"codebooks swapped roles)."
                   + (f" Not shown, nothing to split: {', '.join(hidden)}." if hidden else ""))
        figures.append(_save(figure, out_dir, f"split__{setting}__{model}", title, caption))
    return figures, notes


SPLIT_FIELDS = {"split_auroc": "split AUROC", "split_precision": "split precision",
                "split_recall": "split recall"}


def _history_rows(cells: pd.DataFrame, fields: tuple[str, ...]) -> pd.DataFrame:
    """One row per epoch of the cells' ``history.json`` that has an ``epoch`` and any of
    ``fields``: scenario, model, epsilon, seed, epoch and those fields (NaN where absent)."""
    rows = []
    for cell in cells.itertuples():
        path = cell.folder / "history.json"
        if path.is_file():
            for entry in json.loads(path.read_text()):
                values = {field: entry[field] for field in fields if field in entry}
                if "epoch" in entry and values:
                    rows.append({"scenario": cell.scenario, "model": cell.model,
                                 "epsilon": cell.epsilon, "seed": cell.seed,
                                 "epoch": entry["epoch"], **values})
    return pd.DataFrame(rows)


def _cells(records: pd.DataFrame, run_dir: Path) -> pd.DataFrame:
    """One row per cell: scenario, model, seed, epsilon and its folder of files."""
    cells = records.dropna(subset=["cell_id"]).drop_duplicates("cell_id")
    cells = cells[pd.to_numeric(cells["epsilon"], errors="coerce").notna()]
    return pd.DataFrame({
        "scenario": cells["scenario"], "model": cells["model"], "seed": cells["seed"],
        "epsilon": cells["epsilon"].astype(float),
        "folder": [run_dir / "cells" / str(c) for c in cells["cell_id"]],
    })


def _lowest_seed_with(cells: pd.DataFrame, filename: str) -> pd.DataFrame:
    has = cells[[(folder / filename).is_file() for folder in cells["folder"]]]
    return has.sort_values("seed").drop_duplicates(["scenario", "model"])


def _sample_grid(folder: Path, columns: int = 8, pad: int = 2) -> np.ndarray:
    """The first 64 samples tiled 8 x 8 (grey, [0, 1]); a saved ``samples.png`` as it is."""
    if not (folder / "samples.pt").is_file():
        from matplotlib.image import imread

        image = imread(folder / "samples.png")
        return image[..., :3].mean(-1) if image.ndim == 3 else image
    images = load_samples(folder / "samples.pt")[:64]
    images = images.mean(1) if images.ndim == 4 else images  # N x H x W
    if images.size and images.max() > 1.5:  # uint8 pixels despite the contract
        images = images / 255.0
    n, height, width = images.shape
    rows = math.ceil(n / columns)
    grid = np.ones((rows * (height + pad) + pad, columns * (width + pad) + pad), np.float32)
    for i, image in enumerate(images.clip(0, 1)):
        top, left = pad + (i // columns) * (height + pad), pad + (i % columns) * (width + pad)
        grid[top:top + height, left:left + width] = image
    return grid


def load_samples(path: Path) -> np.ndarray:
    """``samples.pt`` as float32 N x C x H x W (or N x H x W) images; a file that is not that
    is one :class:`UserError` naming it (:func:`load_artefact`)."""
    images = load_artefact(path)
    if not _is_tensor(images) or images.ndim not in (3, 4) or images.is_complex():
        raise _unusable(path, f"it holds {_kind(images)}, not an N x C x H x W image tensor")
    return np.asarray(images.detach().float(), dtype=np.float32)


def load_scores(path: Path) -> dict[str, dict]:
    """``scores.pt`` as ``{mode: {"is_outlier": bool (N,), <score>: float (N,), ...}}`` (a file
    of one mode, ``{"is_outlier": ..., ...}``, becomes mode ``scores``); anything else is one
    :class:`UserError` naming the file (:func:`load_artefact`)."""
    scores = load_artefact(path)
    if not isinstance(scores, dict):
        raise _unusable(path, f"it holds {_kind(scores)}, not a dict of score tables")
    modes = {"scores": scores} if "is_outlier" in scores else scores
    for mode, table in modes.items():
        flags = table.get("is_outlier") if isinstance(table, dict) else None
        if not _is_tensor(flags) or flags.ndim != 1:
            raise _unusable(path, f"mode {mode!r} has no is_outlier vector")
        for name, score in table.items():
            if not _is_tensor(score) or score.shape != flags.shape or score.is_complex():
                raise _unusable(path, f"score {mode}/{name} is not a vector of "
                                      f"{flags.numel()} numbers (one per is_outlier entry)")
    return modes


def load_artefact(path: Path):
    """A cell's ``.pt`` file, read with ``weights_only=True`` (tensors and plain data, never
    code). A truncated, foreign or code-carrying file is one :class:`UserError` naming the file
    and the remedy (torch's own advice, to load with ``weights_only=False``, runs the code)."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise _unusable(path, "it holds more than tensors and plain data (refused: a result "
                              "file never carries code)") from None
    except Exception as error:  # noqa: BLE001 - truncated or foreign files fail in many ways
        first = (str(error).strip().splitlines() or [""])[0].split(". ")[0].rstrip(".")
        first = "" if not first or "weights_only" in first else f": {first[:160]}"
        raise _unusable(path, f"it is truncated or not a torch file ({type(error).__name__}"
                              f"{first})") from None


def _unusable(path: Path, why: str):
    from rvqvae.errors import UserError

    return UserError(f"cannot draw {path}: {why}; delete it (its figure is then skipped with a "
                     f"note) and run 'rvqvae-bench report' again")


def _is_tensor(value) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def _kind(value) -> str:
    if _is_tensor(value):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def _present_models(palette: dict, data: pd.DataFrame) -> list[str]:
    """The models of ``data`` in report order (the palette's), for legends in that order."""
    present = set(data["model"])
    return [model for model in palette if model in present]


def _save(figure, out_dir: Path, stem: str, title: str, caption: str, dpi: int = 150) -> Figure:
    stem = f"{FIGURES}/{file_stem(stem)}"
    for suffix in (".png", ".pdf"):
        figure.savefig(out_dir / f"{stem}{suffix}", dpi=dpi, bbox_inches="tight")
    return Figure(stem, title, caption)


def _n_text(counts) -> str:
    counts = list(counts)
    if not counts:
        return "n = 0 seeds"
    low, high = int(min(counts)), int(max(counts))
    if low == high:
        return f"n = {low} seed" + ("s" if low != 1 else "")
    return f"n = {low}–{high} seeds"


def history_figure(table: pd.DataFrame, metric: str, out_dir: Path) -> Figure:
    """One metric's trend over a history (:func:`bench.history.history_table`): mean ± seed std
    per point, a panel per scenario, a line per model; points the gate flagged against the one
    before are marked (▲ regressed, ▼ improved)."""
    import seaborn as sns
    from matplotlib.figure import Figure as MplFigure

    rows = table[(table["metric"] == metric) & table["mean"].notna()].copy()
    labels = table.drop_duplicates("point").sort_values("point")["label"].tolist()
    scenarios = sorted(pd.unique(rows["scenario"]))
    models = sorted(pd.unique(rows["model"]))
    palette = dict(zip(models, sns.color_palette(n_colors=max(len(models), 1)), strict=True))
    width = max(4.0, 0.45 * len(labels) + 2.0)
    figure = MplFigure(figsize=(width * len(scenarios) + 1.6, 3.8), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(scenarios), squeeze=False)[0])
    flags = {"regressed": ("^", "regressed (gate)"), "improved": ("v", "improved (gate)")}
    with sns.axes_style("whitegrid"):
        for axis, scenario in zip(axes, scenarios, strict=True):
            for model in models:
                part = rows[(rows["scenario"] == scenario) & (rows["model"] == model)]
                part = part.sort_values("point")
                if part.empty:
                    continue
                x, y = part["point"].astype(int), part["mean"].astype(float)
                spread = part["std"].astype(float).fillna(0.0)
                axis.errorbar(x, y, yerr=spread, color=palette[model], marker="o",
                              markersize=4, linewidth=1.3, capsize=2, label=model)
                for outcome, (marker, _) in flags.items():
                    hit = part["outcome"] == outcome
                    axis.scatter(x[hit], y[hit], marker=marker, s=90, facecolors="none",
                                 edgecolors="black", linewidths=1.3, zorder=5)
            changed = rows[(rows["scenario"] == scenario) & (rows["outcome"] == "protocol")]
            for point in sorted(set(changed["point"].astype(int))):
                axis.axvline(point, color="grey", linestyle="--", linewidth=0.8)
            axis.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
            axis.set_title(scenario, fontsize=10)
            axis.set_xlabel("commit")
            axis.set_ylabel(metric)
        for marker, text in flags.values():
            axes[-1].scatter([], [], marker=marker, s=90, facecolors="none", edgecolors="black",
                             label=text)
        axes[-1].plot([], [], color="grey", linestyle="--", linewidth=0.8,
                      label="protocol changed (not compared)")
        axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False, fontsize=8)
    direction = family_and_direction(metric)[1]
    title = f"{metric} {ARROWS[direction]} across commits"
    figure.suptitle(title, fontsize=11)
    caption = (f"{title}: mean ± 1 sample std over seeds at each commit; open triangles mark the "
               f"commits where the gate's rule flagged a change against the commit before, "
               f"dashed lines the commits where the metric's protocol changed (not compared).")
    return _save(figure, out_dir, f"history__{metric}", title, caption)
