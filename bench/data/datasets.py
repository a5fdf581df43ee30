"""Image datasets by name: ``load_dataset("mnist", "train")`` -> :class:`ImageDataset`.

Every dataset is read by a :class:`DatasetReader` registered in :data:`DATASETS`:

- ``mnist``, ``fmnist``: the verified IDX files in the cache (``rvqvae-bench data fetch``),
  or in ``data_dir`` when one is given; each file's sha256 is checked when it is read;
- ``cifar10``: the python pickle batches in ``cifar-10-batches-py/``;
- ``svhn``: ``train_32x32.mat`` / ``test_32x32.mat`` / ``extra_32x32.mat`` (cropped digits);
  these two are read from ``data_dir``, else ``$RVQVAE_DATA_DIR``, else ``cache_root()/data``.

Decoded arrays are kept in memory (keyed by the files' paths, sizes and modification times),
so loading the same split again is instant. The returned tensors are shared between callers:
treat them as read-only (index or ``.float()`` them, never modify them in place).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bench.cache import cache_root
from bench.data import readers
from bench.data.manifest import CLASS_COUNTS, FMNIST_CLASSES, MNIST_CLASSES, SPLIT_FILES
from rvqvae.errors import UserError
from rvqvae.registry import Registry


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """One split of an image dataset, with its pixels as stored (no normalisation)."""

    name: str
    split: str
    images: torch.Tensor  # uint8 N x C x H x W
    labels: torch.Tensor  # int64 N, indices into ``classes``
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]


@dataclass(frozen=True)
class DatasetReader:
    """How to find (``locate``) and decode (``decode``) the files of one dataset's splits.

    ``locate(split, data_dir) -> files`` raises :class:`UserError` saying where it looked;
    ``decode(split, files) -> (images uint8 NxCxHxW, labels int64, classes)``.
    ``class_counts`` holds the exact images per class per split when the content is pinned
    by hashes (scenarios validate their sizes against it without reading any file).
    """

    locate: Callable[[str, Path | None], tuple[Path, ...]]
    decode: Callable[[str, tuple[Path, ...]], tuple[np.ndarray, np.ndarray, tuple[str, ...]]]
    splits: tuple[str, ...]
    image_shape: tuple[int, int, int]
    num_classes: int
    class_counts: dict[str, tuple[int, ...]] | None = field(default=None)


DATASETS: Registry[DatasetReader] = Registry("dataset")


def load_dataset(
    name: str, split: str = "train", *, data_dir: str | os.PathLike | None = None
) -> ImageDataset:
    """The ``split`` of dataset ``name`` as uint8 N x C x H x W images and int64 labels.

    Raises :class:`UserError` for an unknown name or split, for missing files (saying where it
    looked and what to run or set) and for files that are corrupt or not in the expected format.
    """
    reader = DATASETS.get(name)
    if split not in reader.splits:
        raise UserError(
            f"split {split!r} is unknown for dataset {name!r}; known: {', '.join(reader.splits)}"
        )
    files = reader.locate(split, Path(data_dir) if data_dir is not None else None)
    stamps = tuple((str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in files)
    return _load_cached(name, split, stamps)


@functools.lru_cache(maxsize=16)
def _load_cached(name: str, split: str, stamps: tuple[tuple[str, int, int], ...]) -> ImageDataset:
    files = tuple(Path(path) for path, _, _ in stamps)
    images, labels, classes = DATASETS.get(name).decode(split, files)
    return ImageDataset(
        name=name,
        split=split,
        images=torch.from_numpy(np.array(images, dtype=np.uint8, order="C", copy=True)),
        labels=torch.from_numpy(np.array(labels, dtype=np.int64, copy=True)),
        classes=tuple(classes),
    )


# ---------------------------------------------------------------- verified IDX datasets (cache)


def _idx_locator(name: str) -> Callable[[str, Path | None], tuple[Path, ...]]:
    def locate(split: str, data_dir: Path | None) -> tuple[Path, ...]:
        if data_dir is None:
            folder = cache_root() / "data" / name
            files = tuple(folder / file for file in SPLIT_FILES[split])
            if not all(path.is_file() for path in files):
                raise UserError(
                    f"dataset {name!r} is not in the cache (RVQVAE_HOME={cache_root()}); "
                    f"run: rvqvae-bench data fetch {name}"
                )
            return files
        found = []
        for file in SPLIT_FILES[split]:
            candidates = [
                folder / f"{file}{ext}"
                for folder in (data_dir / name, data_dir)
                for ext in ("", ".gz")
            ]
            path = next((c for c in candidates if c.is_file()), None)
            if path is None:
                raise UserError(
                    f"dataset {name!r}: {file} (or .gz) is not in {data_dir / name} or {data_dir}; "
                    f"put the IDX files there or run: rvqvae-bench data fetch {name}"
                )
            found.append(path)
        return tuple(found)

    return locate


def _idx_decoder(name: str, classes: tuple[str, ...]):
    def decode(split: str, files: tuple[Path, ...]):
        images, labels = (
            readers.read_verified_idx(name, file, path)
            for file, path in zip(SPLIT_FILES[split], files, strict=True)
        )
        return images[:, None, :, :], labels, classes

    return decode


for _name, _classes, _text in (
    ("mnist", MNIST_CLASSES, "MNIST handwritten digits, 60k/10k, 1x28x28"),
    ("fmnist", FMNIST_CLASSES, "Fashion-MNIST clothing, 60k/10k, 1x28x28"),
):
    DATASETS.register(
        _name,
        DatasetReader(
            locate=_idx_locator(_name),
            decode=_idx_decoder(_name, _classes),
            splits=("train", "test"),
            image_shape=(1, 28, 28),
            num_classes=10,
            class_counts=CLASS_COUNTS[_name],
        ),
        description=_text,
        files="cache",
    )


# ---------------------------------------------------------------- user-supplied datasets


def user_data_dirs(data_dir: Path | None) -> list[Path]:
    """Folders searched for user-supplied datasets: ``data_dir`` alone if given, else
    ``$RVQVAE_DATA_DIR`` (when set) and ``cache_root()/data``."""
    if data_dir is not None:
        return [data_dir]
    env = os.environ.get("RVQVAE_DATA_DIR")
    return ([Path(env)] if env else []) + [cache_root() / "data"]


def _user_locator(
    name: str, subfolder: str, files_of_split: dict[str, tuple[str, ...]], how_to_get: str
) -> Callable[[str, Path | None], tuple[Path, ...]]:
    def locate(split: str, data_dir: Path | None) -> tuple[Path, ...]:
        wanted = files_of_split[split]
        searched = []
        for base in user_data_dirs(data_dir):
            for folder in (base / subfolder, base):
                searched.append(str(folder))
                if all((folder / file).is_file() for file in wanted):
                    return tuple(folder / file for file in wanted)
        raise UserError(
            f"dataset {name!r} ({split}) not found: looked for {subfolder}/{wanted[0]} in "
            f"{', '.join(dict.fromkeys(searched))}; {how_to_get}, then pass data_dir=<folder> "
            f"or set RVQVAE_DATA_DIR=<folder>"
        )

    return locate


DATASETS.register(
    "cifar10",
    DatasetReader(
        locate=_user_locator(
            "cifar10",
            "cifar-10-batches-py",
            {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
            "download the CIFAR-10 python version (cifar-10-python.tar.gz) and extract it",
        ),
        decode=lambda split, files: readers.read_cifar10(files),
        splits=("train", "test"),
        image_shape=(3, 32, 32),
        num_classes=10,
    ),
    description="CIFAR-10 from the user's cifar-10-batches-py folder, 50k/10k, 3x32x32",
    files="user",
)

DATASETS.register(
    "svhn",
    DatasetReader(
        locate=_user_locator(
            "svhn",
            "svhn",
            {split: (f"{split}_32x32.mat",) for split in ("train", "test", "extra")},
            "download the SVHN cropped digits (train_32x32.mat, test_32x32.mat)",
        ),
        decode=lambda split, files: readers.read_svhn(files[0]),
        splits=("train", "test", "extra"),
        image_shape=(3, 32, 32),
        num_classes=10,
    ),
    description="SVHN cropped digits from the user's .mat files, 73k/26k, 3x32x32",
    files="user",
)
