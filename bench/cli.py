"""``rvqvae-bench``: the command line of the harness.

Each sub-command lives in its own module under :mod:`bench.commands` with two functions,
``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only when their
command runs, so ``rvqvae-bench --help`` stays fast. Every command first loads the plugins
(:mod:`bench.plugins`: installed entry points and ``--plugin MODULE_OR_FILE``). A
:class:`~rvqvae.errors.UserError` becomes one ``rvqvae-bench: error: ...`` line and exit
status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from rvqvae.errors import UserError

COMMANDS = {
    "data": "fetch and verify the datasets (MNIST, Fashion-MNIST) into the cache",
    "scenarios": "list the registered corrupted-dataset scenarios",
    "models": "list the registered models with their default hyper-parameters",
    "list": "list every registry (models, presets, scenarios, metrics, backends, grids) with "
            "the file defining each entry",
    "run": "run a grid of scenario x model x seed and write result records",
    "report": "write tables (md, tex, csv) and figures from a run folder",
    "compare": "compare two result sets metric by metric; exit 1 on any regression",
    "history": "a metric's mean and seed spread across commits: table and trend figures",
    "kernels": "time nearest-codeword search backends and their peers (FAISS, VQP)",
    "training-speed": "training images/s of every registered model on real MNIST images",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="rvqvae-bench",
        description="Benchmark generative models trained on contaminated image data.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, help_text in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        command_parser.add_argument(
            "--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
            help="load this plugin first (a module name or a .py file; repeatable): it may "
                 "register models, metrics, scenarios, backends, extractors, datasets")
        if name == command:
            _module(name).add_arguments(command_parser)
    return parser


MODULES: dict[str, str] = {}  # commands whose module name differs from the command


def _module(name: str):
    return importlib.import_module(f"bench.commands.{MODULES.get(name, name.replace('-', '_'))}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    try:
        from bench.plugins import load_plugins

        load_plugins(args.plugin)
        return int(_module(args.command).run(args) or 0)
    except UserError as error:
        print(f"rvqvae-bench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rvqvae-bench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `rvqvae-bench scenarios | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
