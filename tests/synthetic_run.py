"""A synthetic run folder with known numbers, for tests and for trying ``report``/``compare``.

``write_synthetic_run(run_dir)`` writes what the runner writes for a small MNIST + Fashion-MNIST
grid (3 contamination levels x 5 models x 3 seeds): the records of every cell and, with
``cell_files=True``, each cell's ``samples.pt``, ``scores.pt`` and ``history.json``, plus the
``run.json`` naming the preset's models in order. Every value
is ``SYNTHETIC_MEANS[metric][epsilon][model] + seed_offset(seed, model) * spread(metric)``, so the
mean over seeds is exactly the table entry and the sample std exactly the spread. The offsets
(-1, 0, +1) go to the seeds in a rotation that depends on the model (none for ``vqvae`` and
``nsvae``), so paired differences between models vary from seed to seed as in a real run.

RVQ-VAE's ``history.json`` also holds the split monitoring numbers (``split_precision``,
``split_recall``, ``split_auroc``; NaN at epsilon = 0, where nothing is an outlier): the split
converges at epsilon = 0.2 and for every seed but ``FLIPPED_SEED`` at 0.4, which inverts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

from bench.records import cell_id, make_record, write_cell

SETTING = "mnist+fmnist"
EPSILONS = (0.0, 0.2, 0.4)
MODELS = ("vqvae", "rvqvae", "trimmed-vqvae", "nsvae", "oracle-vqvae")
SEEDS = (0, 1, 2)
SEED_OFFSETS = {0: -1.0, 1: 0.0, 2: 1.0}  # sample std of (-s, 0, s) is exactly s
FLIPPED_SEED = (0.4, 2)  # (epsilon, seed) whose RVQ-VAE split inverts in the history

_M = dict(zip(MODELS, range(len(MODELS)), strict=True))
SYNTHETIC_MEANS: dict[str, dict[float, dict[str, float]]] = {
    "fid_domain_2k": {
        0.0: dict(zip(MODELS, (10.0, 10.4, 10.8, 11.5, 10.2), strict=True)),
        0.2: dict(zip(MODELS, (12.3, 10.1, 11.0, 12.0, 10.2), strict=True)),
        0.4: dict(zip(MODELS, (15.0, 10.3, 11.5, 12.6, 9.9), strict=True)),
    },
    "auroc_transductive_split": {
        0.2: dict(zip(MODELS, (0.70, 0.95, 0.85, 0.80, 0.90), strict=True)),
        0.4: dict(zip(MODELS, (0.65, 0.90, 0.92, 0.78, 0.88), strict=True)),
    },
}
SPREADS = {"fid_domain_2k": 0.4, "auroc_transductive_split": 0.01}
PROTOCOLS = {
    "generation": {"extractor": "domain", "n_samples": 2000, "metric_code_version": 1},
    "detection": {"metric_code_version": 1},
    "other": {"metric_code_version": 1},
}
UNDEFINED_REASON = "no outliers at epsilon = 0"


def synthetic_value(metric: str, epsilon: float, model: str, seed: int) -> float:
    """The value the synthetic run records (derived metrics follow fid / auroc)."""
    return synthetic_mean(metric, epsilon, model) + seed_offset(seed, model) * synthetic_spread(
        metric)


def seed_offset(seed: int, model: str) -> float:
    """The seed's offset in units of the spread: -1, 0 or +1, rotated by the model's position."""
    return SEED_OFFSETS[SEEDS[(SEEDS.index(seed) + _M[model]) % len(SEEDS)]]


def synthetic_mean(metric: str, epsilon: float, model: str) -> float:
    if metric in SYNTHETIC_MEANS:
        return SYNTHETIC_MEANS[metric][epsilon][model]
    fid = SYNTHETIC_MEANS["fid_domain_2k"][epsilon][model]
    if metric == "kid_domain_2k":
        return fid / 1000
    if metric == "outlier_mode_rate_2k":
        return round(0.005 + epsilon * (fid - 9.5) / 10, 4)
    if metric == "recon_mse_clean_test":
        return 0.01 + 0.001 * _M[model] + 0.005 * epsilon
    if metric == "perplexity":
        return 300.0 - 20 * _M[model] - 50 * epsilon
    auroc = SYNTHETIC_MEANS["auroc_transductive_split"][epsilon][model]
    if metric == "auroc_inductive_recon":
        return auroc - 0.05
    if metric == "fpr95_transductive_split":
        return 1.0 - auroc
    raise KeyError(metric)


def synthetic_spread(metric: str) -> float:
    if metric in SPREADS:
        return SPREADS[metric]
    return {"kid_domain_2k": 0.0004, "outlier_mode_rate_2k": 0.002, "recon_mse_clean_test": 0.0001,
            "perplexity": 2.0}.get(metric, 0.01)


GENERATION = ("fid_domain_2k", "kid_domain_2k", "outlier_mode_rate_2k")
DETECTION = ("auroc_transductive_split", "auroc_inductive_recon", "fpr95_transductive_split")
RECONSTRUCTION = ("recon_mse_clean_test", "perplexity")


def synthetic_cell_id(epsilon: float, model: str, seed: int) -> str:
    """The id of a cell of this run (the records' own ``cell_id``)."""
    return cell_id(f"{SETTING}@{epsilon:g}", model, seed)


def write_synthetic_run(
    run_dir: str | Path, *, cell_files: bool = True, failed: Iterable[tuple[float, str, int]] = (),
    models: Iterable[str] = MODELS, seeds: Iterable[int] = SEEDS,
) -> Path:
    """Write the synthetic grid into ``run_dir``; ``failed`` cells (epsilon, model, seed) get the
    one record :mod:`bench.grid.runner` writes for a cell that crashed (metric ``cell``)."""
    run_dir = Path(run_dir)
    failed, models = set(failed), tuple(models)
    run_dir.mkdir(parents=True, exist_ok=True)
    preset = {"name": "synthetic", "description": "made-up numbers with known means",
              "models": [{"name": m, "label": "", "options": {}} for m in models]}
    (run_dir / "run.json").write_text(json.dumps({"preset": preset, "command": "synthetic"}))
    for epsilon in EPSILONS:
        for model in models:
            for seed in seeds:
                cid = synthetic_cell_id(epsilon, model, seed)
                if (epsilon, model, seed) in failed:
                    record = _record(epsilon, model, seed, cid, metric="cell", value=None,
                                     status="failed", protocol=None,
                                     error="RuntimeError: loss became NaN at epoch 3")
                    write_cell(run_dir, cid, [{**record, "epsilon": None}])  # as bench.grid.runner
                    continue
                write_cell(run_dir, cid, _cell_records(epsilon, model, seed, cid))
                if cell_files:
                    _write_cell_files(run_dir / "cells" / cid, epsilon, model, seed)
    return run_dir


def _cell_records(epsilon: float, model: str, seed: int, cid: str) -> list[dict]:
    records = []
    for metric in GENERATION + DETECTION + RECONSTRUCTION:
        family = "generation" if metric in GENERATION else (
            "detection" if metric in DETECTION else "other")
        if metric in DETECTION and epsilon == 0:
            records.append(_record(epsilon, model, seed, cid, metric=metric, value=None,
                                   status="undefined", error=UNDEFINED_REASON,
                                   protocol=PROTOCOLS[family]))
            continue
        records.append(_record(epsilon, model, seed, cid, metric=metric, status="ok",
                               value=synthetic_value(metric, epsilon, model, seed),
                               protocol=PROTOCOLS[family]))
    return records


def _record(epsilon: float, model: str, seed: int, cid: str, **fields) -> dict:
    # Distinct timestamps in grid order, as a runner's would be: reports list models this way.
    order = (EPSILONS.index(epsilon) * len(MODELS) + _M[model]) * len(SEEDS) + seed
    return make_record(
        timestamp=f"2026-01-01T00:{order // 60:02d}:{order % 60:02d}Z",
        scenario=f"{SETTING}@{epsilon:g}", model=model, seed=seed, epsilon=epsilon,
        inlier="mnist", outlier="fmnist", config_hash=f"cfg{_M[model]:09d}", git_sha="0" * 40,
        versions={"python": "3.11.7", "torch": "2.15.0"}, device="cpu (synthetic, 2 threads)",
        wall_s=1.0, cell_id=cid, **fields,
    )


def _write_cell_files(folder: Path, epsilon: float, model: str, seed: int) -> None:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(1000 * _M[model] + seed)
    # Samples: a blurry stroke whose thickness depends on the model, plus noise; [0, 1].
    grid = torch.linspace(-1, 1, 28)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    angles = torch.rand(64, 1, 1, generator=generator) * math.pi
    distance = (xx * torch.cos(angles) + yy * torch.sin(angles)).abs()
    samples = torch.exp(-(distance / (0.08 + 0.04 * _M[model])) ** 2) * (xx**2 + yy**2 < 0.7)
    samples = (samples + 0.1 * epsilon * torch.rand(64, 28, 28, generator=generator)).clamp(0, 1)
    torch.save(samples.unsqueeze(1).float(), folder / "samples.pt")
    scores = {}
    for mode, n, score_name in (("transductive", 400, "split"), ("inductive", 200, "recon")):
        is_outlier = torch.zeros(n, dtype=torch.bool)
        is_outlier[: round(epsilon * n)] = True
        separation = 3.0 * SYNTHETIC_MEANS["auroc_transductive_split"].get(
            epsilon, {model: 0.5})[model] - 1.5
        score = torch.randn(n, generator=generator) + separation * is_outlier
        scores[mode] = {"is_outlier": is_outlier, score_name: score}
    torch.save(scores, folder / "scores.pt")
    jitter = 1 + 0.05 * SEED_OFFSETS[seed]
    loss = [0.2 * 0.7**e + 0.02 * (1 + _M[model]) + 0.01 * epsilon for e in range(1, 9)]
    history = [{"epoch": e, "loss": jitter * loss[e - 1],
                "recon": 0.1 * 0.8**e} for e in range(1, 9)]
    if model == "rvqvae":
        for entry in history:
            entry.update(_split_monitoring(entry["epoch"], epsilon, seed))
    (folder / "history.json").write_text(json.dumps(history))


def _split_monitoring(epoch: int, epsilon: float, seed: int) -> dict[str, float]:
    """Made-up split precision / recall / AUROC of one epoch, as RVQ-VAE records them."""
    if epsilon == 0:
        return {"split_precision": math.nan, "split_recall": math.nan, "split_auroc": math.nan}
    start = 0.5 + 0.05 * SEED_OFFSETS[seed]  # the first split is near chance
    final = 0.08 if (epsilon, seed) == FLIPPED_SEED else 0.97 - 0.2 * epsilon
    auroc = final + (start - final) * 0.55 ** (epoch - 1)
    quality = epsilon + (1 - epsilon) * (2 * auroc - 1) if auroc > 0.5 else epsilon * 2 * auroc
    return {"split_precision": quality, "split_recall": quality, "split_auroc": auroc}
