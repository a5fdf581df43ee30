"""``rvqvae-bench run``: a preset, or an ad-hoc grid, into result records."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    grid = parser.add_mutually_exclusive_group(required=True)
    grid.add_argument("--preset", help="a preset name (smoke, ci, quick, paper, nsvae-paper) "
                                       "or a .toml preset file")
    grid.add_argument("--scenario", nargs="+", metavar="NAME",
                      help="ad-hoc grid: scenario names (see 'rvqvae-bench scenarios')")
    parser.add_argument("--model", nargs="+", metavar="NAME",
                        help="ad-hoc grid: model names (see 'rvqvae-bench models')")
    parser.add_argument("--seeds", nargs="+", type=int, metavar="N", help="seeds (default 0)")
    parser.add_argument("--train-size", type=int, help="override the scenarios' train size")
    parser.add_argument("--epochs", type=int, help="override every model's epochs")
    parser.add_argument("--n-samples", type=int, help="generated samples per cell")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="override the preset's device")
    parser.add_argument("--out", required=True, help="run folder (resumed if it exists)")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from bench.presets import ModelSpec, Preset, get_preset
    from bench.runner import run_preset
    from rvqvae.errors import UserError

    if args.preset:
        preset = get_preset(args.preset)
    else:
        if not args.model:
            raise UserError("--scenario needs --model NAME [NAME...]; see 'rvqvae-bench models'")
        preset = Preset(name="adhoc", description="ad-hoc grid from the command line",
                        scenarios=tuple(args.scenario),
                        models=tuple(ModelSpec(m) for m in args.model))
    changes = {}
    if args.seeds:
        changes["seeds"] = tuple(args.seeds)
    if args.train_size:
        changes["train_size"] = args.train_size
    if args.n_samples:
        changes["n_samples"] = args.n_samples
    if args.device:
        changes["device"] = args.device
    if args.epochs:
        changes["models"] = tuple(
            dataclasses.replace(m, options={**m.options, "epochs": args.epochs})
            for m in preset.models)
    preset = dataclasses.replace(preset, **changes)
    if preset.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise UserError(f"preset {preset.name!r} wants a CUDA GPU and none is available; "
                            f"pass --device cpu to run it on the CPU (slow)")
    _check_names(preset)
    summary = run_preset(preset, args.out, progress=not args.quiet)
    print(f"{len(summary.finished)} cell(s) finished, {len(summary.skipped)} skipped "
          f"(done before), {len(summary.failed)} failed; records in {summary.run_dir}",
          file=sys.stderr)
    return 1 if summary.failed else 0


def _check_names(preset) -> None:
    """Unknown scenario or model names fail before any cell runs."""
    from bench.scenarios import get_scenario
    from rvqvae.models import MODELS

    for name in preset.scenarios:
        get_scenario(name)
    for spec in preset.models:
        MODELS.get(spec.name)
