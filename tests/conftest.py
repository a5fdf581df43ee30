"""Shared fixtures.

``real_data``: the cache folder holding the verified MNIST and Fashion-MNIST files. Tests that
use it are skipped, with the command to run, when the files are missing; under CI (``$CI`` set),
where the data is always fetched first, they fail instead so they can never be skipped silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def real_data() -> Path:
    from bench.cache import cache_root
    from bench.data.manifest import IDX_FILES, SHA256

    root = cache_root()
    missing = [
        name
        for name in SHA256
        if not all((root / "data" / name / file).is_file() for file in IDX_FILES)
    ]
    if missing:
        message = (
            f"{' and '.join(missing)} not in the cache {root / 'data'}; "
            f"run: rvqvae-bench data fetch {' '.join(missing)}"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return root
