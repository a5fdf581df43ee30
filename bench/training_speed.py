"""Training throughput of every registered model on real MNIST images (not a timed test).

    rvqvae-bench training-speed [--models NAME[:FIELD=VALUE...] ...] [--n 2000]
        [--epochs 1] [--repeats 3] [--threads 2] [--out results/training_speed]

For each model: ``fit`` on the first ``n`` MNIST training images, ``repeats`` times (seeds
0, 1, ...) after one untimed warm-up fit; report the median. A fit's time is split at its last
``on_epoch`` call: before it is *training* (images/s = n x epochs / training seconds), after
it is the *prior* (whatever ``fit`` does once the autoencoder's epochs are done, e.g. the
PixelCNN over VQ codes; ~0 for models without one). A model spec may override config fields,
``nsvae:decoder_channels=(32,32):decoder_strides=(2,2)`` (values are Python literals).
Writes ``training_speed.csv`` and ``training_speed.md`` (with provenance) into ``--out``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from bench.cache import atomic_write_text
from bench.presets.spec import ModelSpec
from bench.provenance import provenance

COLUMNS = (
    "model", "n_images", "epochs", "repeats", "threads", "train_s", "train_images_per_s",
    "prior_s", "train_s_all", "prior_s_all", "sampling_s", "train_gflop", "prior_gflop",
    "sampling_gflop", "train_gflops", "prior_gflops", "sampling_gflops", "gemm_gflops",
    "train_pct_gemm", "prior_pct_gemm", "sampling_pct_gemm", "error",
)
GEMM_SIZE = 2048  # the square fp32 GEMM every phase's FLOP/s is compared with
N_SAMPLES = 500  # generated per cell by the robust presets


def measure_training_speed(
    spec: ModelSpec, images: torch.Tensor, *, epochs: int = 1, repeats: int = 3,
) -> dict[str, Any]:
    """Median training and prior seconds of ``repeats`` fits of ``spec`` on ``images`` (after
    one untimed warm-up fit on at most 64 images), and the training images/s. The images are
    treated as clean (``contamination=0``, no flagged outliers), so every model, the robust
    and oracle ones included, trains on all of them."""
    from rvqvae.models.base import create_model

    clean = {"contamination": 0.0, "outlier_flags": torch.zeros(len(images), dtype=torch.bool)}
    warm_up = {"contamination": 0.0, "outlier_flags": clean["outlier_flags"][:64]}
    create_model(spec.name, **spec.options).fit(images[:64], seed=0, epochs=1, **warm_up)
    train_times, prior_times = [], []
    for seed in range(repeats):
        model = create_model(spec.name, **spec.options)
        last_epoch_end: list[float] = []
        started = time.perf_counter()
        model.fit(images, seed=seed, epochs=epochs, **clean,
                  on_epoch=lambda record, ends=last_epoch_end: ends.append(time.perf_counter()))
        finished = time.perf_counter()
        split = last_epoch_end[-1] if last_epoch_end else finished
        train_times.append(split - started)
        prior_times.append(finished - split)
    train_s = statistics.median(train_times)
    prior_s = statistics.median(prior_times)
    return {
        **_phase_flops(spec, images, epochs=epochs, clean=clean, train_s=train_s,
                       prior_s=prior_s),
        "train_s": train_s,
        "train_images_per_s": len(images) * epochs / train_s,
        "prior_s": prior_s,
        "train_s_all": ";".join(f"{t:.3f}" for t in train_times),
        "prior_s_all": ";".join(f"{t:.3f}" for t in prior_times),
    }


def _phase_flops(spec: ModelSpec, images: torch.Tensor, *, epochs: int, clean: dict,
                 train_s: float, prior_s: float) -> dict[str, float]:
    """Each phase's work (torch's FLOP counter: matrix products and convolutions, forward and
    backward; a C++ quantizer kernel is not counted) from one more fit and sampling pass, and
    the achieved GFLOP/s with the timed phases' seconds."""
    from torch.utils.flop_counter import FlopCounterMode

    from rvqvae.models.base import create_model

    model = create_model(spec.name, **spec.options)
    at_epoch: list[int] = []
    with FlopCounterMode(display=False) as counter:
        model.fit(images, seed=0, epochs=epochs, **clean,
                  on_epoch=lambda record: at_epoch.append(counter.get_total_flops()))
        fit_flop = counter.get_total_flops()
    train_flop = at_epoch[-1] if at_epoch else fit_flop
    started = time.perf_counter()
    model.sample(N_SAMPLES, seed=0)
    sampling_s = time.perf_counter() - started
    with FlopCounterMode(display=False) as counter:
        model.sample(N_SAMPLES, seed=0)
        sampling_flop = counter.get_total_flops()
    flop = {"train": train_flop, "prior": fit_flop - train_flop, "sampling": sampling_flop}
    seconds = {"train": train_s, "prior": prior_s, "sampling": sampling_s}
    out: dict[str, float] = {"sampling_s": sampling_s}
    for phase in flop:
        out[f"{phase}_gflop"] = flop[phase] / 1e9
        out[f"{phase}_gflops"] = flop[phase] / 1e9 / seconds[phase] if seconds[phase] > 0 \
            else float("nan")
    return out


def gemm_gflops(size: int = GEMM_SIZE) -> float:
    """GFLOP/s of a square fp32 GEMM at this process's thread count (median of timed blocks)."""
    from torch.utils.benchmark import Timer

    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator)
    b = torch.randn(size, size, generator=generator)
    timer = Timer("a @ b", globals={"a": a, "b": b}, num_threads=torch.get_num_threads())
    return 2 * size ** 3 / timer.blocked_autorange(min_run_time=1.0).median / 1e9


def run_benchmark(
    specs: list[ModelSpec], *, n: int = 2000, epochs: int = 1, repeats: int = 3,
    out: str | Path | None = "results/training_speed", log=print,
) -> list[dict[str, Any]]:
    """Measure every spec on the first ``n`` MNIST training images; one row per spec (a failed
    model gets its error and the others go on); writes CSV + Markdown into ``out`` if given."""
    from bench.data import load_dataset

    pixels = load_dataset("mnist", "train").images[:n]
    images = pixels.float().div(255.0)
    gemm = gemm_gflops()
    if log is not None:
        log(f"square fp32 GEMM ({GEMM_SIZE}): {gemm:.1f} GFLOP/s")
    rows = []
    for spec in specs:
        row: dict[str, Any] = {"model": str(spec), "n_images": len(images), "epochs": epochs,
                               "repeats": repeats, "threads": torch.get_num_threads(),
                               "error": ""}
        try:
            row.update(measure_training_speed(spec, images, epochs=epochs, repeats=repeats))
            row["gemm_gflops"] = gemm
            for phase in ("train", "prior", "sampling"):
                row[f"{phase}_pct_gemm"] = 100 * row[f"{phase}_gflops"] / gemm
        except Exception as error:  # noqa: BLE001 - one broken model must not stop the others
            row["error"] = f"{type(error).__name__}: {error}".splitlines()[0]
        if log is not None:
            log(_summary(row))
        rows.append(row)
    if out is not None:
        write_results(rows, Path(out))
    return rows


def write_results(rows: list[dict[str, Any]], out: Path) -> tuple[Path, Path]:
    """``training_speed.csv`` (one row per model, provenance columns) and ``.md``, atomically."""
    import pandas as pd

    info = provenance("cpu")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["git_sha"], frame["device"], frame["torch"], frame["timestamp"] = (
        info["git_sha"], info["device"], info["versions"].get("torch", ""), stamp)
    csv_path = atomic_write_text(out / "training_speed.csv", frame.to_csv(index=False))
    md_path = atomic_write_text(out / "training_speed.md", _markdown(rows, info, stamp))
    return csv_path, md_path


def _summary(row: dict[str, Any]) -> str:
    if row["error"]:
        return f"{row['model']}: FAILED {row['error']}"
    return (f"{row['model']}: {row['train_images_per_s']:.0f} images/s training "
            f"({row['train_s']:.2f} s median), prior {row['prior_s']:.2f} s")


def _markdown(rows: list[dict[str, Any]], info: dict[str, Any], stamp: str) -> str:
    first = rows[0] if rows else {}
    lines = [
        "# Training throughput",
        "",
        f"`fit` on the first {first.get('n_images', 0)} MNIST training images, "
        f"{first.get('epochs', 0)} epoch(s), median of {first.get('repeats', 0)} fits after a "
        f"warm-up, {first.get('threads', 0)} torch threads. Training images/s excludes the "
        "prior (time after the last epoch), shown separately.",
        "",
        f"- device: {info['device']}",
        f"- git: {info['git_sha']}; torch {info['versions'].get('torch', '?')}; {stamp}",
        "",
        "| model | training images/s | training s | prior s | all training s |",
        "|---|---:|---:|---:|---|",
    ]
    for row in rows:
        if row["error"]:
            lines.append(f"| `{row['model']}` | failed: {row['error']} | | | |")
        else:
            lines.append(
                f"| `{row['model']}` | {row['train_images_per_s']:.0f} | {row['train_s']:.2f} "
                f"| {row['prior_s']:.2f} | {row['train_s_all'].replace(';', ', ')} |"
            )
    gemm = next((row["gemm_gflops"] for row in rows if not row["error"]), float("nan"))
    lines += [
        "",
        "## Each phase against the hardware",
        "",
        f"Work per phase from torch's FLOP counter (matrix products and convolutions, forward "
        f"and backward; the fused C++ quantizer kernel is not counted), divided by the phase's "
        f"median seconds above (sampling: {N_SAMPLES} samples, one timed pass), against a "
        f"square fp32 GEMM ({GEMM_SIZE}) timed in the same run: {gemm:.1f} GFLOP/s.",
        "",
        "| model | training GFLOP | GFLOP/s | % GEMM | prior GFLOP | GFLOP/s | % GEMM "
        "| sampling GFLOP | s | GFLOP/s | % GEMM |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row["error"]:
            continue
        lines.append(
            f"| `{row['model']}` | {row['train_gflop']:.1f} | {row['train_gflops']:.2f} | "
            f"{row['train_pct_gemm']:.1f} | {row['prior_gflop']:.1f} | "
            f"{row['prior_gflops']:.2f} | {row['prior_pct_gemm']:.1f} | "
            f"{row['sampling_gflop']:.2f} | {row['sampling_s']:.2f} | "
            f"{row['sampling_gflops']:.2f} | {row['sampling_pct_gemm']:.1f} |")
    return "\n".join(lines) + "\n"

