"""Paired claims: every model against a reference model, seed by seed (the report's ``claims``).

For each scenario, metric and model, the values of the model and of the reference model
(``--reference``, default ``vqvae``) are paired by seed. The claims table gives, per row:

- ``mean_diff`` (model − reference) and ``ci_low``/``ci_high``: its 95% Student t interval;
- ``p_value``: the exact two-sided sign-flip permutation test; ``p_adjusted``: Benjamini–
  Hochberg over the report's family (every row of a *primary* metric);
- ``wins``/``ties``/``losses``: seeds where the model is better / exactly equal / worse than the
  reference in the metric's direction (:mod:`bench.metrics.catalog`: FID lower, AUROC higher...);
- ``degenerate``/``degenerate_reference``: seeds of the pair whose training was flagged
  degenerate (:mod:`bench.metrics.health`). They stay in the pairs: a failed training is a real
  outcome of a recipe, so it is counted, shown, and never silently dropped;
- ``verdict``: by :mod:`bench.report.verdict_rule` (better / worse / no difference shown / too
  few seeds for a verdict (need ≥ 6) / secondary metric: no verdict).

The summary table (:func:`summary_claims`) answers "is the model better than the reference on
this metric across the report's scenarios?" with one stratified sign-flip test over all pairs
(its own Benjamini–Hochberg family), beside the count of scenarios each way, which is a
description, not evidence.

Pairs: a seed counts when both models have an ``ok``, finite value; a seed where either ran
but has no such value (undefined, failed, crashed cell, or the other model missing that seed) is
dropped and counted in ``n_dropped``. Only metrics with a known direction are compared, not
spreads (``kid_*_std``), and not where either model was not run on the scenario or neither has a
value (e.g. detection at ε = 0). Every number is reproducible: the tests are exact up to 16
pairs and seeded beyond.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bench.metrics.catalog import metric_family
from bench.metrics.health import is_degenerate
from bench.report import verdict_rule as rule
from bench.report.aggregate import seed_number
from bench.report.tables import ARROWS, decimals_for, latex_escape
from rvqvae.errors import UserError

DEFAULT_REFERENCE = "vqvae"
CLAIM_COLUMNS = (
    "scenario", "epsilon", "model", "reference", "metric", "direction", "primary", "n_pairs",
    "n_dropped", "degenerate", "degenerate_reference", "mean_diff", "ci_low", "ci_high",
    "p_value", "p_adjusted", "wins", "ties", "losses", "verdict",
)
SUMMARY_COLUMNS = (
    "metric", "model", "reference", "direction", "primary", "n_scenarios", "n_pairs",
    "scenarios_better", "scenarios_worse", "degenerate", "degenerate_reference", "p_value",
    "p_adjusted", "verdict",
)
CLAIMS = "claims"  # file stems under the report's tables/
SUMMARY = "claims_summary"
NOTHING_TO_COMPARE = "Nothing to compare: no other model has a metric of known direction."


def paired_claims(
    records: pd.DataFrame, reference: str = DEFAULT_REFERENCE, *,
    models: Sequence[str] | None = None, primary: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per (metric, scenario, model) of ``records`` (as :func:`bench.load_results`
    returns them) against ``reference``, columns ``CLAIM_COLUMNS``, in metric, scenario (run)
    and model order (``models``: which models and in what order; default all, in run order).
    ``primary``: fnmatch patterns of the metrics in the verdict family (default: the catalog's
    primary metrics).

    Raises :class:`UserError` (one line, listing the models present) when ``reference`` has no
    records.
    """
    frame = pd.DataFrame(list(_pairs(records, reference, models)))
    if frame.empty:
        return pd.DataFrame(columns=list(CLAIM_COLUMNS))
    frame["primary"] = frame["metric"].map(lambda m: is_primary(m, primary))
    return _decided(frame, frame["mean_diff"])[list(CLAIM_COLUMNS)].reset_index(drop=True)


def summary_claims(claims: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """One row per (metric, model) of ``claims``: a stratified sign-flip test over every pair of
    every scenario (:func:`bench.report.verdict_rule.stratified_p_value`), adjusted by
    Benjamini–Hochberg over the primary rows; columns ``SUMMARY_COLUMNS``."""
    if claims.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    reference = claims["reference"].iloc[0]
    values = _values_by_cell(records)
    rows = []
    for (metric, model), part in claims.groupby(["metric", "model"], sort=False):
        strata = [np.subtract(*_paired(values, scenario, model, reference, metric)[1:])
                  for scenario in part["scenario"]]
        n_pairs = int(part["n_pairs"].sum())
        direction = part["direction"].iloc[0]
        good = part["mean_diff"] < 0 if direction == "lower" else part["mean_diff"] > 0
        bad = part["mean_diff"] > 0 if direction == "lower" else part["mean_diff"] < 0
        rows.append({
            "metric": metric, "model": model, "reference": reference, "direction": direction,
            "primary": bool(part["primary"].iloc[0]), "n_scenarios": len(part),
            "n_pairs": n_pairs, "scenarios_better": int(good.sum()),
            "scenarios_worse": int(bad.sum()), "degenerate": int(part["degenerate"].sum()),
            "degenerate_reference": int(part["degenerate_reference"].sum()),
            "p_value": rule.stratified_p_value(strata) if n_pairs else math.nan,
            "mean_sign": float(np.sign(np.concatenate(strata).mean())) if n_pairs else 0.0,
        })
    frame = pd.DataFrame(rows)
    return _decided(frame, frame["mean_sign"])[list(SUMMARY_COLUMNS)]


def _decided(frame: pd.DataFrame, effect: pd.Series) -> pd.DataFrame:
    """``frame`` with ``p_adjusted`` (Benjamini–Hochberg over its primary rows that have enough
    pairs for a verdict) and ``verdict`` by the sign of ``effect``."""
    frame["p_adjusted"] = rule.adjusted(frame["p_value"],
                                        frame["primary"] & (frame["n_pairs"] >= rule.min_pairs()))
    frame["verdict"] = [
        rule.verdict(e, p, n, d, primary=primary)
        for e, p, n, d, primary in zip(effect, frame["p_adjusted"], frame["n_pairs"],
                                       frame["direction"], frame["primary"], strict=True)]
    return frame


def is_primary(metric: str, patterns: Sequence[str] | None = None) -> bool:
    """Whether ``metric`` is in the verdict family: it matches one of ``patterns``, or (without
    patterns) its catalog entry is ``primary``."""
    if patterns is not None:
        return any(fnmatch.fnmatchcase(str(metric), p) for p in patterns)
    try:
        return metric_family(str(metric)).primary
    except KeyError:
        return False


def claims_markdown(claims: pd.DataFrame, summary: pd.DataFrame | None = None) -> str:
    """The claims as Markdown: the method, the summary over scenarios, one table per metric."""
    if claims.empty:
        return f"### Paired claims\n\n{NOTHING_TO_COMPARE}\n"
    reference = claims["reference"].iloc[0]
    lines = ["### Paired claims vs " + reference, "", _method(reference, claims), ""]
    if summary is not None and not summary.empty:
        lines += ["**Across scenarios** (one stratified sign-flip test per metric and model)", "",
                  "| metric | model | scenarios | pairs | scenarios better/worse | p | p adj | "
                  "degenerate | verdict |", "|---|---|---:|---:|:---:|---:|---:|:---:|---|"]
        for _, row in summary.iterrows():
            lines.append(
                f"| {row['metric']} {ARROWS[row['direction']]} | {row['model']} | "
                f"{row['n_scenarios']} | {row['n_pairs']} | {row['scenarios_better']}/"
                f"{row['scenarios_worse']} | {_p_text(row['p_value'])} | "
                f"{_p_text(row['p_adjusted'])} | {_degenerate_text(row)} | "
                f"{_verdict_text(row['verdict'])} |")
        lines.append("")
    for metric in pd.unique(claims["metric"]):
        part = claims[claims["metric"] == metric]
        direction = part["direction"].iloc[0]
        kind = "primary" if part["primary"].iloc[0] else "secondary"
        lines += [f"**{metric}** {ARROWS[direction]} {direction} is better ({kind})", "",
                  "| scenario | model | n | mean diff [95% t-CI] | p | p adj | seeds agree | "
                  "degenerate | verdict |", "|---|---|---:|---:|---:|---:|---|:---:|---|"]
        for _, row in part.iterrows():
            lines.append(f"| {row['scenario']} | {row['model']} | {_n_text(row)} | "
                         f"{_interval_text(row)} | {_p_text(row['p_value'])} | "
                         f"{_p_text(row['p_adjusted'])} | {agree_text(row)} | "
                         f"{_degenerate_text(row)} | {_verdict_text(row['verdict'])} |")
        lines.append("")
    return "\n".join(lines)


def claims_latex(claims: pd.DataFrame) -> str:
    """The claims as a LaTeX ``longtable`` (booktabs rules), one row per claim."""
    if claims.empty:
        return f"% Paired claims: {NOTHING_TO_COMPARE}\n"
    reference = claims["reference"].iloc[0]
    rows = list(claims.iterrows())
    body = pd.DataFrame({
        "metric": [latex_escape(m) + (r" $\downarrow$" if d == "lower" else r" $\uparrow$")
                   for m, d in zip(claims["metric"], claims["direction"], strict=True)],
        "scenario": claims["scenario"].map(latex_escape),
        "model": claims["model"].map(latex_escape),
        "n": [_n_text(row) for _, row in rows],
        "mean diff [95\\% CI]": [_interval_text(row) for _, row in rows],
        "p": claims["p_value"].map(_p_text),
        "p adj": claims["p_adjusted"].map(_p_text),
        "seeds agree": [agree_text(row) for _, row in rows],
        "degenerate": [_degenerate_text(row) for _, row in rows],
        "verdict": claims["verdict"],
    }).map(lambda text: str(text).replace("−", "$-$").replace("<", "$<$")
           .replace("≥", r"$\geq$"))
    caption = (f"Paired claims: model $-$ {latex_escape(reference)} per scenario and metric, "
               r"paired by seed; mean difference with 95\% Student $t$ interval, exact "
               r"two-sided sign-flip permutation $p$, Benjamini--Hochberg adjusted over the "
               rf"primary metrics' claims; a verdict needs adjusted $p \leq {rule.LEVEL:g}$ and "
               rf"at least {rule.min_pairs()} seeds.")
    return body.style.hide(axis="index").to_latex(
        hrules=True, column_format="lllrrrrlcl", environment="longtable",
        caption=caption, label=f"tab:{CLAIMS}")


def claims_for_report(
    records: pd.DataFrame, reference: str | None, models: Sequence[str],
    primary: Sequence[str] | None = None,
) -> tuple[pd.DataFrame | None, pd.DataFrame | None, str]:
    """``(claims, summary, "")``, or ``(None, None, note)`` when the default reference is not in
    the run; an explicit ``reference`` that is not in the run raises :class:`UserError`."""
    if reference is None:
        present = set(records["model"].dropna())
        if DEFAULT_REFERENCE not in present:
            return None, None, (f"No paired claims: the default reference model "
                                f"`{DEFAULT_REFERENCE}` is not in this run (pass --reference "
                                f"MODEL).")
        reference = DEFAULT_REFERENCE
    claims = paired_claims(records, reference, models=models, primary=primary)
    return claims, summary_claims(claims, records), ""


def agree_text(row) -> str:
    """``5 of 6 better``: how many seeds point the way of the verdict (or of the majority)."""
    n, wins, losses = int(row["n_pairs"]), int(row["wins"]), int(row["losses"])
    if not n:
        return "–"
    if row["verdict"] == rule.WORSE or (row["verdict"] != rule.BETTER and losses > wins):
        return f"{losses} of {n} worse"
    return f"{wins} of {n} better"


# --- pairing ----------------------------------------------------------------------------------

def _pairs(records: pd.DataFrame, reference: str, models: Sequence[str] | None):
    """One dict per comparable (metric, scenario, model): the statistics without the family."""
    records = records[records["model"].notna()].sort_values(
        "timestamp", kind="stable", na_position="last")
    present = [str(m) for m in pd.unique(records["model"])]
    if reference not in present:
        raise UserError(f"reference model {reference!r} is not in this run; models present: "
                        f"{', '.join(present) or 'none'}")
    models = [m for m in (models if models is not None else present)
              if m != reference and m in present]
    seeds_run = {key: set(part["seed"].map(seed_number))
                 for key, part in records.groupby(["scenario", "model"], sort=False)}
    degenerate = _degenerate_seeds(records)
    epsilons = pd.to_numeric(records["epsilon"], errors="coerce").groupby(records["scenario"]).max()
    values = _values_by_cell(records)
    for metric in pd.unique(records.loc[records["status"] == "ok", "metric"]):
        try:
            entry = metric_family(str(metric))
        except KeyError:
            continue
        if entry.spread:
            continue
        for scenario in pd.unique(records["scenario"]):
            for model in models:
                ran = seeds_run.get((scenario, model), set())
                if not ran or (scenario, reference) not in seeds_run:
                    continue  # one of the two was not run on this scenario
                seeds, own, ref = _paired(values, scenario, model, reference, metric)
                if not (values.get((scenario, model, metric))
                        or values.get((scenario, reference, metric))):
                    continue  # neither has a value (e.g. detection at epsilon = 0)
                yield {"scenario": scenario, "epsilon": epsilons.get(scenario, math.nan),
                       "model": model, "reference": reference, "metric": metric,
                       "direction": entry.direction,
                       "n_dropped": len(ran | seeds_run[(scenario, reference)]) - len(seeds),
                       "degenerate": len(degenerate.get((scenario, model), set()) & set(seeds)),
                       "degenerate_reference": len(
                           degenerate.get((scenario, reference), set()) & set(seeds)),
                       **paired_difference(own, ref, entry.direction)}


def paired_difference(model: Sequence[float], reference: Sequence[float], direction: str
                      ) -> dict:
    """The statistics of one claim from values paired by position (same seed), before the
    family's adjustment: ``n_pairs``, ``mean_diff``, ``ci_low``, ``ci_high``, ``p_value``,
    ``wins``, ``ties``, ``losses``."""
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction must be 'lower' or 'higher', got {direction!r}")
    diff = np.asarray(model, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    n = len(diff)
    wins = int((diff < 0).sum() if direction == "lower" else (diff > 0).sum())
    ties = int((diff == 0).sum())
    low, high = rule.t_interval(diff)
    return {"n_pairs": n, "mean_diff": float(diff.mean()) if n else math.nan,
            "ci_low": low, "ci_high": high,
            "p_value": float(rule.sign_flip_p_values(diff)) if n else math.nan,
            "wins": wins, "ties": ties, "losses": n - wins - ties}


def _values_by_cell(records: pd.DataFrame) -> dict:
    values = records[(records["status"] == "ok")
                     & np.isfinite(pd.to_numeric(records["value"], errors="coerce"))]
    return {key: dict(zip(part["seed"].map(seed_number), part["value"].astype(float), strict=True))
            for key, part in values.groupby(["scenario", "model", "metric"], sort=False)}


def _paired(values: dict, scenario, model, reference, metric):
    own = values.get((scenario, model, metric), {})
    ref = values.get((scenario, reference, metric), {})
    seeds = sorted(set(own) & set(ref), key=lambda s: (isinstance(s, str), s))
    return seeds, [own[s] for s in seeds], [ref[s] for s in seeds]


def _degenerate_seeds(records: pd.DataFrame) -> dict:
    """(scenario, model) -> seeds whose records say their training was degenerate."""
    if "health" not in records.columns:
        return {}
    flagged = records[records["health"].map(is_degenerate)]
    return {key: set(part["seed"].map(seed_number))
            for key, part in flagged.groupby(["scenario", "model"], sort=False)}


# --- text -------------------------------------------------------------------------------------

def _method(reference: str, claims: pd.DataFrame) -> str:
    family = int((claims["primary"] & (claims["n_pairs"] >= rule.min_pairs())).sum())
    primary = ", ".join(sorted(pd.unique(claims.loc[claims["primary"], "metric"]))) or "none"
    return (
        f"Model − `{reference}` on the same scenario and seed. **Verdict rule**: exact two-sided "
        f"sign-flip permutation test of the mean paired difference, p-values adjusted by "
        f"{rule.CORRECTION_NAME} over the family of this report's primary-metric claims "
        f"({family} claims; primary metrics: {primary}); **better**/**worse** when the adjusted "
        f"p ≤ {rule.LEVEL:g}. With fewer than {rule.min_pairs()} seeds the exact test cannot "
        f"reach {rule.LEVEL:g} (its smallest p is 2/2^n): no verdict. Secondary metrics show "
        f"their effect and raw p only. Interval: 95% Student t of the mean difference (not "
        f"adjusted; it does not decide). Seeds agree: seeds pointing the verdict's way. "
        f"Degenerate: seeds whose training was flagged (model/reference); they are counted in "
        f"the pairs, not dropped. n = pairs (+ dropped: a seed without a value for either "
        f"model).")


def _interval_text(row) -> str:
    mean, low, high = row["mean_diff"], row["ci_low"], row["ci_high"]
    if not math.isfinite(mean):
        return "–"
    width = high - low if math.isfinite(low) and math.isfinite(high) else 0.0
    decimals = decimals_for(width, 2) if width > 0 else decimals_for(abs(mean), 3)
    text = _signed(mean, decimals)
    if math.isfinite(low):
        text += f" [{_signed(low, decimals)}, {_signed(high, decimals)}]"
    return text


def _signed(value: float, decimals: int) -> str:
    """``value`` rounded, with a typographic minus; a nonzero value that would round to zero in
    one significant digit (``4e-08``: an interval bound must show its sign), zero as ``0.00``."""
    text = f"{value:.{decimals}f}"
    if float(text) == 0:
        text = f"{value:.1g}" if value != 0 else text.lstrip("-")
    return text.replace("-", "−")


def _verdict_text(verdict: str) -> str:
    return f"**{verdict}**" if verdict in (rule.BETTER, rule.WORSE) else verdict


def _degenerate_text(row) -> str:
    return f"{row['degenerate']}/{row['degenerate_reference']}"


def _n_text(row) -> str:
    return f"{row['n_pairs']}" + (f" (+{row['n_dropped']})" if row["n_dropped"] else "")


def _p_text(p: float) -> str:
    if not math.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3g}"


