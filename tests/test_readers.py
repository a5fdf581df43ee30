"""Format readers on small synthetic files written in the standard formats: IDX (raw and gzip),
CIFAR-10 python pickles, SVHN .mat; and their error messages."""

from __future__ import annotations

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import scipy.io
import torch

from bench.data import DATASETS, load_dataset, read_idx, write_idx
from rvqvae.errors import UserError


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ---------------------------------------------------------------------- IDX


def test_idx_reads_hand_written_header_big_endian(tmp_path):
    values = np.arange(2 * 3 * 300, dtype=np.int64).astype(np.uint8).reshape(2, 3, 300)
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2, 3, 300)
    (tmp_path / "a").write_bytes(header + values.tobytes())
    array = read_idx(tmp_path / "a")
    assert array.shape == (2, 3, 300) and array.dtype == np.uint8
    np.testing.assert_array_equal(array, values)


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip_raw_and_gzip(tmp_path, compress):
    images = _rng().integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / "images", images, compress=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    np.testing.assert_array_equal(read_idx(path), images)
    labels = _rng(1).integers(0, 10, size=7, dtype=np.uint8)
    np.testing.assert_array_equal(
        read_idx(write_idx(tmp_path / "labels", labels, compress=compress)), labels
    )


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x01\x02\x08\x01", "is not an IDX file (bad magic number 01020801)"),
        (b"", "is not an IDX file (bad magic number empty)"),
        (
            b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + b"\x00" * 4,
            "holds IDX type 0x0d; only unsigned bytes (0x08) are supported",
        ),
        (
            b"\x00\x00\x08\x03" + struct.pack(">I", 5),
            "has a truncated IDX header (3 dimensions, 8 bytes)",
        ),
        (
            b"\x00\x00\x08\x02" + struct.pack(">2I", 3, 4) + b"\x00" * 11,
            "is truncated or padded: header says 3x4 = 12 bytes, file holds 11",
        ),
    ],
)
def test_idx_malformed_files_raise_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(UserError) as error:
        read_idx(path)
    assert str(error.value) == f"{path} {message}"


def test_idx_damaged_gzip_names_the_file(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 100) + bytes(100))[:30])
    with pytest.raises(
        UserError, match=r"bad\.gz is a damaged gzip file .*delete it and fetch it again"
    ):
        read_idx(path)


# ---------------------------------------------------------------------- CIFAR-10


def _write_cifar(folder, per_batch=4, label_names=None):
    """CIFAR-10 python batches as the official pickles: dict of b'data' (N x 3072) and b'labels'."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = _rng(2)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(x) for x in rng.integers(0, 10, size=per_batch)]
        with open(folder / name, "wb") as handle:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels}, handle)
        batches[name] = (data, labels)
    if label_names is not None:
        with open(folder / "batches.meta", "wb") as handle:
            pickle.dump({b"label_names": [n.encode() for n in label_names]}, handle)
    return batches


def test_cifar10_reads_pickle_batches_in_order_channel_first(tmp_path):
    names = [f"class{i}" for i in range(10)]
    batches = _write_cifar(tmp_path / "cifar-10-batches-py", label_names=names)
    train = load_dataset("cifar10", "train", data_dir=tmp_path)
    assert train.images.shape == (20, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64 and train.classes == tuple(names)
    data = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    # each row is 1024 red, then 1024 green, then 1024 blue values, row-major 32 x 32
    assert int(train.images[5, 1, 2, 3]) == int(data[5, 1024 + 2 * 32 + 3])
    np.testing.assert_array_equal(train.images.reshape(20, -1).numpy(), data)
    assert train.labels.tolist() == labels
    test = load_dataset("cifar10", "test", data_dir=tmp_path / "cifar-10-batches-py")
    np.testing.assert_array_equal(test.images.reshape(4, -1).numpy(), batches["test_batch"][0])


def test_cifar10_found_through_rvqvae_data_dir_and_default_class_names(tmp_path, monkeypatch):
    _write_cifar(tmp_path / "cifar-10-batches-py")
    monkeypatch.setenv("RVQVAE_DATA_DIR", str(tmp_path))
    test = load_dataset("cifar10", "test")
    assert test.classes[0] == "airplane" and test.classes[-1] == "truck" and len(test) == 4


def test_cifar10_missing_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("RVQVAE_DATA_DIR", raising=False)
    with pytest.raises(UserError) as error:
        load_dataset("cifar10", "test", data_dir=tmp_path)
    assert str(error.value) == (
        f"dataset 'cifar10' (test) not found: looked for cifar-10-batches-py/test_batch in "
        f"{tmp_path / 'cifar-10-batches-py'}, {tmp_path}; download the CIFAR-10 python version "
        f"(cifar-10-python.tar.gz) and extract it, then pass data_dir=<folder> or set "
        f"RVQVAE_DATA_DIR=<folder>"
    )


def test_cifar10_batch_without_data_is_rejected(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({b"labels": [1, 2]}, handle)
    with pytest.raises(
        UserError, match=r"test_batch is not a CIFAR-10 batch: it lacks b'data' or b'labels'"
    ):
        load_dataset("cifar10", "test", data_dir=tmp_path)


# ---------------------------------------------------------------------- SVHN


def test_svhn_mat_transposed_to_nchw_and_label_10_becomes_0(tmp_path):
    rng = _rng(3)
    x = rng.integers(0, 256, size=(32, 32, 3, 6), dtype=np.uint8)  # H x W x C x N, as SVHN ships
    y = np.array([[10], [1], [2], [10], [9], [5]], dtype=np.uint8)
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": x, "y": y})
    train = load_dataset("svhn", "train", data_dir=tmp_path)
    assert train.images.shape == (6, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.tolist() == [0, 1, 2, 0, 9, 5]
    assert int(train.images[4, 2, 7, 11]) == int(x[7, 11, 2, 4])
    np.testing.assert_array_equal(train.images.permute(2, 3, 1, 0).numpy(), x)


def test_svhn_wrong_shape_and_missing_file(tmp_path):
    scipy.io.savemat(
        tmp_path / "test_32x32.mat", {"X": np.zeros((28, 28, 6), np.uint8), "y": np.zeros((6, 1))}
    )
    with pytest.raises(
        UserError,
        match=r"is not an SVHN cropped-digits file: want X of shape 32x32x3xN and y, "
        r"got X \(28, 28, 6\), y \(6, 1\)",
    ):
        load_dataset("svhn", "test", data_dir=tmp_path)
    with pytest.raises(
        UserError, match=r"dataset 'svhn' \(train\) not found: looked for svhn/train_32x32.mat"
    ):
        load_dataset("svhn", "train", data_dir=tmp_path)


# ---------------------------------------------------------------------- registry and caching


def test_unknown_dataset_and_split_list_the_known_ones():
    with pytest.raises(UserError) as error:
        load_dataset("cifar100")
    assert str(error.value) == "dataset 'cifar100' is unknown; known: cifar10, fmnist, mnist, svhn"
    with pytest.raises(UserError) as error:
        load_dataset("mnist", "val")
    assert str(error.value) == "split 'val' is unknown for dataset 'mnist'; known: train, test"
    assert {"mnist", "fmnist", "cifar10", "svhn"} <= set(DATASETS.names())


def test_loads_are_cached_in_process_and_follow_file_changes(tmp_path):
    scipy.io.savemat(
        tmp_path / "test_32x32.mat", {"X": np.ones((32, 32, 3, 2), np.uint8), "y": [[1], [2]]}
    )
    first = load_dataset("svhn", "test", data_dir=tmp_path)
    assert load_dataset("svhn", "test", data_dir=tmp_path) is first
    scipy.io.savemat(
        tmp_path / "test_32x32.mat", {"X": np.ones((32, 32, 3, 3), np.uint8), "y": [[1], [2], [3]]}
    )
    stat = os.stat(tmp_path / "test_32x32.mat")
    os.utime(tmp_path / "test_32x32.mat", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert len(load_dataset("svhn", "test", data_dir=tmp_path)) == 3
