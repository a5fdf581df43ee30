"""``rvqvae-bench run``: a preset, or an ad-hoc grid, into result records.

Every input is checked before the first cell runs (:func:`bench.presets.checks.check_preset`);
a bad one is one ``rvqvae-bench: error: ...`` line and exit status 2. Exit status 1 when any
cell of the grid is failed (failed now, or failed before and kept with ``--keep-failed``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

MAX_EPOCHS = 10_000  # the paper presets train for 100 or fewer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    grid = parser.add_mutually_exclusive_group(required=True)
    grid.add_argument("--preset", help="a preset name (smoke, ci, quick, paper, nsvae-paper) "
                                       "or a .toml preset file")
    grid.add_argument("--scenario", nargs="+", metavar="NAME",
                      help="ad-hoc grid: scenario names (see 'rvqvae-bench scenarios'), also "
                           "those of --scenario-file")
    parser.add_argument("--scenario-file", action="append", default=[], metavar="TOML",
                        help="register the scenarios of this TOML file first (repeatable); "
                             "run them with --scenario NAME or from a preset")
    parser.add_argument("--model", nargs="+", metavar="NAME",
                        help="ad-hoc grid: model names (see 'rvqvae-bench models'), each "
                             "optionally with options: NAME:field=value:... "
                             "(e.g. rvqvae:warmup_epochs=1); with --preset: run only these "
                             "of the preset's models (by their label)")
    parser.add_argument("--metrics", nargs="+", metavar="GROUP",
                        help="compute only these metric groups (see 'rvqvae-bench list'); the "
                             "health group always runs (e.g. --metrics health for a "
                             "training-health study)")
    parser.add_argument("--seeds", nargs="+", type=int, metavar="N", help="seeds (default 0)")
    parser.add_argument("--train-size", type=int, help="override the scenarios' train size")
    parser.add_argument("--epochs", type=int, help="override every model's epochs")
    parser.add_argument("--n-samples", type=int, help="generated samples per cell (>= 2)")
    parser.add_argument("--device", help="override the preset's device: cpu, cuda or cuda:N")
    parser.add_argument("--out", required=True, help="run folder (resumed if it exists)")
    parser.add_argument("--keep-failed", action="store_true",
                        help="do not retry cells that failed in an earlier run")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    scale = parser.add_argument_group("executor (where the cells run)")
    from bench.grid.executors import EXECUTORS

    scale.add_argument("--executor", choices=EXECUTORS.names(), default="local",
                       help="local: one cell after another in this process (default); ray: one "
                            "Ray task per cell (pip install 'rvqvae-bench[ray]')")
    scale.add_argument("--address", help="ray: the cluster to join (e.g. HEAD:6379 or auto); "
                                         "default: start Ray on this machine")
    scale.add_argument("--cpus-per-cell", type=int, default=1,
                       help="ray: CPUs (and torch threads) per cell (default 1)")
    scale.add_argument("--gpus-per-cell", type=float,
                       help="ray: GPUs per cell, fractions allowed (default 1 with --device "
                            "cuda, else 0)")
    scale.add_argument("--max-retries", type=int, default=2,
                       help="ray: reruns of a cell whose worker died (default 2); a cell that "
                            "raises is recorded as failed, not retried")


def run(args: argparse.Namespace) -> int:
    from bench.bounds import bounded
    from bench.grid.runner import run_preset
    from bench.presets import Preset, get_preset
    from bench.scenarios import load_scenario_file
    from rvqvae.errors import UserError

    for path in args.scenario_file:
        load_scenario_file(path)
    if args.preset:
        preset = get_preset(args.preset)
        if args.model:
            preset = dataclasses.replace(preset, models=_preset_models(preset, args.model))
    else:
        if not args.model:
            raise UserError("--scenario needs --model NAME [NAME...]; see 'rvqvae-bench models'")
        preset = Preset(name="adhoc", description="ad-hoc grid from the command line",
                        scenarios=tuple(args.scenario),
                        models=tuple(_model_spec(m) for m in args.model))
    changes = {}
    for option, field in (("seeds", "seeds"), ("train_size", "train_size"),
                          ("n_samples", "n_samples"), ("device", "device"),
                          ("metrics", "metrics")):
        value = getattr(args, option)
        if value is not None:  # 0 is a value (and an error), not "not given"
            changes[field] = tuple(value) if option in ("seeds", "metrics") else value
    if args.epochs is not None:
        if args.epochs < 1:
            raise UserError(f"--epochs must be >= 1, got {args.epochs}")
        bounded("--epochs", args.epochs, low=1, high=MAX_EPOCHS, integer=True,
                why="every epoch passes over the whole training set of every cell")
        changes["models"] = tuple(
            dataclasses.replace(m, options={**m.options, "epochs": args.epochs})
            for m in preset.models)
    preset = dataclasses.replace(preset, **changes)
    ray_options = None
    if args.executor == "ray":
        from bench.grid.on_ray import RayOptions

        ray_options = RayOptions(address=args.address, cpus_per_cell=args.cpus_per_cell,
                                 gpus_per_cell=args.gpus_per_cell, max_retries=args.max_retries)
    elif args.address or args.gpus_per_cell is not None:
        raise UserError("--address and --gpus-per-cell need --executor ray")
    summary = run_preset(preset, args.out, progress=not args.quiet,
                         keep_failed=args.keep_failed, executor=args.executor,
                         ray_options=ray_options)
    print(summary.line(), file=sys.stderr)
    return 0 if summary.ok else 1


def _preset_models(preset, labels: list[str]) -> tuple:
    """The preset's models whose labels are ``labels`` (in the preset's order)."""
    from rvqvae.errors import UserError

    known = [spec.display for spec in preset.models]
    unknown = [label for label in labels if label not in known]
    if unknown:
        raise UserError(f"--model {unknown[0]} is not a model of preset {preset.name!r}; its "
                        f"models: {', '.join(known)} (without --preset, --model builds a grid)")
    return tuple(spec for spec in preset.models if spec.display in labels)


def _model_spec(text: str):
    """``NAME`` or ``NAME:field=value:...`` (as ``training-speed`` reads it); a spec with options
    is labelled by its text, so that ``rvqvae`` and ``rvqvae:warmup_epochs=1`` are two models."""
    from bench.presets import ModelSpec

    spec = ModelSpec.parse(text)
    return dataclasses.replace(spec, label=text) if spec.options else spec
