"""Both error rates of the CI gate, measured: false alarms on unchanged code, detection of
injected regressions. The cheap cases live in tests/test_gate.py; this script runs the rest.

    python -m bench.studies.gate_error_rates --baseline runs/ci-base --work runs/gate \
        --out results/gate

``--baseline`` is a ``ci``-preset run over several seeds (the committed
``results/baselines/ci.csv`` is its aggregate). Each case runs the ``ci`` preset (or the models
it concerns) into ``--work/<case>`` and compares it with the baseline through
``bench.compare`` with the packaged tolerances, exactly as ``tox -e gate`` does.

False alarms: unchanged code that must pass the gate.
- ``same-machine``: seeds 0, 1, 2 on this machine (what CI runs: a subset of the baseline seeds);
- ``other-seeds``: the baseline's seeds 3, 4 judged against its seeds 0, 1, 2 alone (disjoint
  seed sets, nothing recomputed);
- ``other-cpu``: 1 thread instead of 2, ATen's AVX2 kernels instead of this CPU's widest
  (``ATEN_CPU_CAPABILITY=avx2``) and oneDNN off (``torch.backends.mkldnn``): another float
  order everywhere, as on another CPU type.
Detection: injected regressions that must fail it, naming the metric.
- ``half-epochs``: vqvae trained for 2 of its 4 epochs;
- ``split-disabled``: RVQ-VAE whose per-epoch split marks no outliers;
- ``wrong-codeword``: ``rvqvae.quantize.nearest`` returns the next codeword for 5% of rows;
- ``fid-vs-train``: FID/KID against the contaminated training set, not the clean inliers.
Resumable: a case whose run folder is complete is not recomputed; ``--judge-only`` re-judges
the existing run folders (e.g. after a change of the gate's rule).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    # name: (kind, seeds, models (None: all), environment, injection)
    "same-machine": ("false alarm", (0, 1, 2), None, {}, None),
    "other-seeds": ("false alarm", (3, 4), None, {}, None),
    "other-cpu": ("false alarm", (0, 1, 2), None,
                  {"OMP_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "avx2"}, "no-onednn"),
    "half-epochs": ("detection", (0, 1, 2), ("vqvae",), {}, "half-epochs"),
    "split-disabled": ("detection", (0, 1, 2), ("rvqvae",), {}, "split-disabled"),
    "wrong-codeword": ("detection", (0, 1, 2), ("vqvae",), {}, "wrong-codeword"),
    "fid-vs-train": ("detection", (0, 1, 2), ("oracle-vqvae",), {}, "fid-vs-train"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="the ci-preset run over many seeds")
    parser.add_argument("--work", default="runs/gate", help="run folders of the cases")
    parser.add_argument("--out", default="results/gate", help="where the table is written")
    parser.add_argument("--case", nargs="+", choices=sorted(CASES), help="default: all")
    parser.add_argument("--judge-only", action="store_true",
                        help="judge the cases' existing run folders, run nothing")
    parser.add_argument("--inject", help=argparse.SUPPRESS)  # internal: one case's run
    parser.add_argument("--seeds", nargs="+", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--models", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inject is not None:
        return run_injected(args.inject, args.seeds, args.models, Path(args.work))
    rows = []
    for name in args.case or CASES:
        kind, seeds, models, env, injection = CASES[name]
        run_dir, baseline = Path(args.work) / name, Path(args.baseline)
        if name == "same-machine":
            run_dir = _subset(baseline, run_dir, seeds)
        elif name == "other-seeds":
            run_dir = _subset(baseline, run_dir, seeds)
            baseline = _subset(baseline, Path(args.work) / f"{name}-baseline", (0, 1, 2))
        elif not args.judge_only:
            start = time.perf_counter()
            command = [sys.executable, "-m", __name__, "--baseline", args.baseline, "--work",
                       str(run_dir), "--inject", injection or "", "--seeds", *map(str, seeds)]
            if models:
                command += ["--models", *models]
            subprocess.run(command, env={**os.environ, **env}, check=True)
            print(f"{name}: ran in {time.perf_counter() - start:.0f} s", flush=True)
        rows.append(judge(name, kind, baseline, run_dir, models))
        print(json.dumps(rows[-1]), flush=True)
    write_table(rows, Path(args.out))
    return 0


def judge(name, kind, baseline_dir: Path, run_dir: Path, models) -> dict:
    """The gate's verdict on one case (the baseline restricted to the models the case ran)."""
    from bench.compare import (
        compare,
        counts,
        exit_status,
        load_cells,
        load_tolerances,
        machine_notes,
    )

    baseline, candidate = load_cells(baseline_dir), load_cells(run_dir)
    if models:
        baseline = baseline[baseline["model"].isin(models)]
    result = compare(baseline, candidate, load_tolerances())
    flagged = result[result["outcome"].isin(("regressed", "missing", "protocol"))]
    status = exit_status(result)
    return {
        "case": name, "kind": kind, "exit": status,
        "as_expected": status == (1 if kind == "detection" else 0),
        "counts": counts(result),
        "flagged": [f"{r.model} {r.scenario} {r.metric} ({r.outcome})"
                    for r in flagged.itertuples()],
        "machine_notes": machine_notes(baseline, candidate),
    }


def run_injected(injection: str, seeds, models, run_dir: Path) -> int:
    """Run the ci preset with one injected change (in this process), into ``run_dir``."""
    import torch

    from bench.grid.runner import run_preset
    from bench.presets import get_preset

    preset = get_preset("ci")
    chosen = [m for m in preset.models if not models or m.name in models]
    if injection == "half-epochs":
        chosen = [dataclasses.replace(m, options={**m.options, "epochs": m.options["epochs"] // 2})
                  for m in chosen]
    elif injection == "no-onednn":
        torch.backends.mkldnn.enabled = False
    elif injection:
        INJECTIONS[injection]()
    preset = dataclasses.replace(preset, seeds=tuple(seeds), models=tuple(chosen))
    summary = run_preset(preset, run_dir, progress=False)
    return 0 if summary.ok else 1


def _split_disabled() -> None:
    import torch

    import rvqvae.models.rvqvae as rvq

    rvq.split_by_score = lambda scores, **_: torch.zeros(scores.shape[0], dtype=torch.bool)


def _wrong_codeword() -> None:
    from rvqvae import quantize

    original = quantize.nearest

    def nearest(x, codebook, *args, **kwargs):
        indices, distances = original(x, codebook, *args, **kwargs)
        wrong = indices.clone()
        wrong[::20] = (wrong[::20] + 1) % codebook.shape[0]  # every 20th row: 5%
        return wrong, distances

    quantize.nearest = nearest


def _fid_against_training_set() -> None:
    import bench.grid.cell as cell
    import bench.metrics.evaluate as evaluate

    original_metrics = evaluate.generation_metrics_with_protocol
    original_evaluate = cell._evaluate
    training: dict = {}

    def against_training(samples, reference, **options):
        return original_metrics(samples, training["images"], **options)

    def remember_training(preset, model, data, *rest, **options):
        training["images"] = data.train_images
        return original_evaluate(preset, model, data, *rest, **options)

    evaluate.generation_metrics_with_protocol = against_training
    cell._evaluate = remember_training


INJECTIONS = {"split-disabled": _split_disabled, "wrong-codeword": _wrong_codeword,
              "fid-vs-train": _fid_against_training_set}


def _subset(baseline_dir: Path, run_dir: Path, seeds) -> Path:
    """The baseline's own cells of ``seeds``: what CI recomputes, bit for bit, on this CPU."""
    (run_dir / "cells").mkdir(parents=True, exist_ok=True)
    for path in (baseline_dir / "cells").glob("*.json"):
        if any(path.name.endswith(f"__s{seed}.json") for seed in seeds):
            (run_dir / "cells" / path.name).write_bytes(path.read_bytes())
    return run_dir


def write_table(rows: list[dict], out: Path) -> None:
    from bench.provenance import device_name, git_sha, package_versions

    out.mkdir(parents=True, exist_ok=True)
    lines = ["| case | kind | gate exit | as expected | regressed | flagged (first 3) |",
             "|---|---|---:|---|---:|---|"]
    for row in rows:
        lines.append(f"| {row['case']} | {row['kind']} | {row['exit']} | "
                     f"{'yes' if row['as_expected'] else '**no**'} | "
                     f"{row['counts']['regressed']} | {'; '.join(row['flagged'][:3])} |")
    header = (f"Gate error rates, measured on {device_name('cpu')} (baseline threads as "
              f"recorded), git {git_sha()}, torch {package_versions().get('torch')}.\n\n")
    (out / "error_rates.md").write_text(header + "\n".join(lines) + "\n")
    (out / "error_rates.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
