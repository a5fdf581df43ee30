"""``rvqvae-bench training-speed``: training throughput of every registered model on MNIST.

Measurement and outputs: :mod:`bench.training_speed`. Unknown model names and options fail
before any timing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rvqvae.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", metavar="SPEC",
                        help="NAME or NAME:FIELD=VALUE:... (default: every registered model)")
    parser.add_argument("--n", type=int, default=2000, help="MNIST training images")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed fits per model")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--out", default="results/training_speed", help="folder for CSV + md")


def run(args: argparse.Namespace) -> int:
    import torch

    import rvqvae.models  # noqa: F401  (registers the built-in models)
    from bench.presets.spec import ModelSpec
    from bench.training_speed import run_benchmark
    from rvqvae.models.base import MODELS, create_model

    for name in ("n", "epochs", "repeats", "threads"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be >= 1, got {getattr(args, name)}")
    specs = [ModelSpec.parse(s) for s in (args.models or MODELS.names())]
    for spec in specs:  # unknown names and options fail before any timing
        create_model(spec.name, **spec.options)
    torch.set_num_threads(args.threads)
    run_benchmark(specs, n=args.n, epochs=args.epochs, repeats=args.repeats, out=args.out)
    print(f"wrote {Path(args.out) / 'training_speed.csv'} and training_speed.md")
    return 0
