"""Datasets for the benchmark: verified MNIST / Fashion-MNIST in the cache, CIFAR-10 and SVHN
from a folder the user supplies.

- ``load_dataset(name, split="train", *, data_dir=None) -> ImageDataset`` (uint8 images);
- ``fetch(names=None, *, quiet=False) -> dict`` puts MNIST / Fashion-MNIST in the cache;
- ``DATASETS``: the registry of dataset readers (``DATASETS.names()`` lists them).

Names are imported on first use, so ``rvqvae-bench data fetch`` does not need to import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DATASETS": "bench.data.datasets",
    "DatasetReader": "bench.data.datasets",
    "ImageDataset": "bench.data.datasets",
    "load_dataset": "bench.data.datasets",
    "FETCHABLE": "bench.data.fetching",
    "fetch": "bench.data.fetching",
    "read_idx": "bench.data.idx",
    "write_idx": "bench.data.idx",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'bench.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return __all__
