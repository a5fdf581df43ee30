"""Where rvqvae-bench keeps data, weights and reference statistics, and how it writes there.

The cache root is ``$RVQVAE_HOME`` (default ``~/.cache/rvqvae``). Every write goes to a
uniquely named temporary file in the same folder (:func:`rvqvae.atomic.atomic_path`) and is
renamed into place, so a killed process never
leaves a half-written file behind.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from rvqvae.atomic import atomic_path
from rvqvae.home import cache_root

__all__ = [
    "atomic_path", "atomic_write_bytes", "atomic_write_text", "cache_dir", "cache_root",
    "sha256_file",
]


def cache_dir(*parts: str) -> Path:
    """A sub-folder of the cache, created on demand."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(target, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
