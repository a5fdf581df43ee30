"""Provenance carried by every result: git SHA, package versions, device, config hash."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

TRACKED_PACKAGES = (
    "rvqvae-bench", "torch", "torchvision", "torch-fidelity", "torchmetrics", "numpy", "pandas",
    "faiss-cpu", "vector-quantize-pytorch", "triton",
)


@functools.lru_cache(maxsize=1)
def git_sha() -> str:
    """The checkout's commit (with ``-dirty`` when it has uncommitted changes), or ``unknown``."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def device_name(device: str = "cpu") -> str:
    """A human name for the device results were computed on, e.g. ``cpu (AMD EPYC, 2 threads)``."""
    import torch

    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(device)})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    threads = torch.get_num_threads()
    return f"cpu ({cpu}, {threads} thread{'' if threads == 1 else 's'})"


def config_hash(config: Any) -> str:
    """A short stable hash of a dataclass or JSON-able config (12 hex digits)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def provenance(device: str = "cpu") -> dict[str, Any]:
    """The provenance fields stamped on every record and results file; ``plugins`` (name,
    version, file) only when plugins are loaded, so built-in records keep their fields."""
    from bench.plugins import loaded_plugins

    fields = {
        "git_sha": git_sha(),
        "versions": package_versions(),
        "device": device_name(device),
    }
    plugins = [plugin.provenance() for plugin in loaded_plugins()]
    return {**fields, "plugins": plugins} if plugins else fields
