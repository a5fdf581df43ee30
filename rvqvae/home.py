"""Where rvqvae keeps what it downloads or builds: ``$RVQVAE_HOME``, else ``~/.cache/rvqvae``
(datasets, pinned weights, reference statistics, the fused kernel's builds, tuning tables)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The cache folder: ``$RVQVAE_HOME`` or ``~/.cache/rvqvae`` (not created here)."""
    return Path(os.environ.get("RVQVAE_HOME") or Path.home() / ".cache" / "rvqvae")
