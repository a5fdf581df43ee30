"""Decoders of the standard on-disk formats into numpy arrays.

- verified IDX files (MNIST, Fashion-MNIST), hashed as they are read;
- CIFAR-10 python pickle batches (``data_batch_1..5``, ``test_batch``, ``batches.meta``);
- SVHN ``*_32x32.mat`` files (``X`` is H x W x C x N, label 10 means digit 0).

Each returns ``(images uint8 N x C x H x W, labels int64 N, classes)`` or, for IDX, one
array, and raises :class:`UserError` naming the file when it is not in the expected format.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
from pathlib import Path

import numpy as np

from bench.data.fetching import hash_mismatch
from bench.data.idx import GZIP_MAGIC, parse_idx
from bench.data.manifest import SHA256
from rvqvae.errors import UserError

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
SVHN_CLASSES: tuple[str, ...] = tuple(str(digit) for digit in range(10))


def read_verified_idx(dataset: str, file: str, path: Path) -> np.ndarray:
    """The array in ``path`` (raw or gzip), after checking its decompressed sha256."""
    data = path.read_bytes()
    if data[:2] == GZIP_MAGIC:
        data = gzip.decompress(data)
    actual = hashlib.sha256(data).hexdigest()
    if actual != SHA256[dataset][file]:
        raise hash_mismatch(dataset, file, path, actual)
    return parse_idx(data, source=str(path))


def read_cifar10(files: tuple[Path, ...]) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Images and labels of the CIFAR-10 pickle batches ``files``, concatenated in order.

    Class names come from ``batches.meta`` beside the batches when present.
    """
    images, labels = [], []
    for path in files:
        batch = _unpickle(path)
        data, batch_labels = batch.get(b"data"), batch.get(b"labels")
        if data is None or batch_labels is None:
            raise UserError(f"{path} is not a CIFAR-10 batch: it lacks b'data' or b'labels'")
        data = np.asarray(data, dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != len(batch_labels):
            raise UserError(
                f"{path} is not a CIFAR-10 batch: data has shape {data.shape} for "
                f"{len(batch_labels)} labels (want N x 3072)"
            )
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch_labels, dtype=np.int64))
    classes = CIFAR10_CLASSES
    meta_path = files[0].parent / "batches.meta"
    if meta_path.is_file():
        names = _unpickle(meta_path).get(b"label_names")
        if names:
            classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    return np.concatenate(images), np.concatenate(labels), classes


def read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Images and labels of one SVHN cropped-digits ``.mat`` file (label 10 becomes 0)."""
    import scipy.io  # imported here: only SVHN needs scipy

    try:
        mat = scipy.io.loadmat(path)
    except Exception as error:  # scipy raises several unrelated types for a bad file
        raise UserError(f"{path} is not a readable .mat file ({error})") from None
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise UserError(
            f"{path} is not an SVHN cropped-digits file: want X of shape 32x32x3xN and y, got "
            f"X {None if x is None else x.shape}, y {None if y is None else y.shape}"
        )
    labels = np.asarray(y, dtype=np.int64).reshape(-1)
    if labels.shape[0] != x.shape[3]:
        raise UserError(f"{path}: {x.shape[3]} images but {labels.shape[0]} labels")
    labels[labels == 10] = 0
    images = np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)), dtype=np.uint8)
    return images, labels, SVHN_CLASSES


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            content = pickle.load(handle, encoding="bytes")  # noqa: S301 (user's own files)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise UserError(f"{path} is not a CIFAR python pickle ({error})") from None
    if not isinstance(content, dict):
        raise UserError(f"{path} is not a CIFAR python pickle (holds a {type(content).__name__})")
    return content
