"""Pinned domain classifiers: weights trained once, shipped with the package, sha256-checked.

A classifier trained on each machine is bitwise reproducible on that machine only: another CPU
type sums floats in another order, the weights differ, and every ``fid_domain`` and
outlier-mode number with them. So the classifiers the registered scenarios need are trained
once and shipped as package data (as torch-fidelity pins its Inception weights):

- ``mnist+fmnist``: 20 classes, for ``mnist+fmnist@ε`` and ``fmnist+mnist@ε``;
- ``mnist``: 10 classes, for the held-out-class scenarios ``mnistK+rest@ε``;
- ``mnist+noise``: 10 digits + a noise class, for ``mnist+uniform@ε`` and ``mnist+gaussian@ε``.

``MANIFEST`` (``pinned/domain.json``) lists each file with its sha256, class names, the recipe
and seed it was trained with, its test accuracy, and a features checksum on a fixed input batch
(``probe_batch``) that a test recomputes on every machine. ``domain_classifier`` uses a pinned
classifier whenever one matches the datasets (in any order), noise flag, seed and recipe it is
asked for; anything else trains locally and says ``source="local"`` in its protocol, so reports
never mix the two.

Re-pin (a new ``PIN_VERSION``; every baseline must then be re-recorded)::

    python -m bench.studies.pin_domain_classifiers --write
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from bench.cache import sha256_file
from rvqvae.errors import UserError

PIN_VERSION = 1
PINNED_DIR = Path(__file__).resolve().parent / "pinned"  # package data
MANIFEST = PINNED_DIR / "domain.json"
#: name -> (datasets, noise_class): the classifiers the registered scenarios need
PINNED_SETS = {
    "mnist+fmnist": (("mnist", "fmnist"), False),
    "mnist": (("mnist",), False),
    "mnist+noise": (("mnist",), True),
}


def pinned_entry(datasets: tuple[str, ...], noise_class: bool, seed: int,
                 recipe: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest entry that matches, or None (then the caller trains locally)."""
    for name, entry in _manifest().items():
        if (sorted(entry["datasets"]) == sorted(datasets)
                and entry["noise_class"] == noise_class and entry["seed"] == seed
                and entry["recipe"] == recipe):
            return {"name": name, **entry}
    return None


def load_pinned_state(entry: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The entry's state dict, after checking the file's sha256 (weights only: no code runs)."""
    path = PINNED_DIR / entry["file"]
    if not path.is_file():
        raise UserError(f"pinned domain classifier {path.name} is missing from the installed "
                        f"package; reinstall rvqvae-bench")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise UserError(f"pinned domain classifier {path.name} has sha256 {digest[:16]}..., "
                        f"expected {entry['sha256'][:16]}...; reinstall rvqvae-bench")
    return torch.load(path, map_location="cpu", weights_only=True)


def source_label(entry: dict[str, Any]) -> str:
    """How protocols name a pinned classifier: ``pinned-v1:mnist+fmnist``."""
    return f"pinned-v{entry['pin_version']}:{entry['name']}"


def probe_batch() -> torch.Tensor:
    """A fixed input batch (8 uniform-noise images and 8 smooth blobs), identical everywhere."""
    generator = torch.Generator().manual_seed(20261122)
    noise = torch.rand(8, 1, 28, 28, generator=generator)
    grid = torch.linspace(-1, 1, 28)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    centres = torch.rand(8, 2, generator=generator) - 0.5
    blobs = torch.exp(-((xx - centres[:, :1, None]) ** 2 + (yy - centres[:, 1:, None]) ** 2) / 0.1)
    return torch.cat([noise, blobs[:, None]])


def features_checksum(classifier) -> dict[str, Any]:
    """Numbers that pin a classifier's features on ``probe_batch`` (compared to float tolerance)."""
    features = classifier.features(probe_batch()).double()
    return {"sum": float(features.sum()), "sum_sq": float((features**2).sum()),
            "row0_first8": [float(v) for v in features[0, :8]],
            "predicted": classifier.predict(probe_batch()).tolist()}


def _manifest() -> dict[str, dict[str, Any]]:
    if not MANIFEST.is_file():
        return {}
    return json.loads(MANIFEST.read_text())["classifiers"]
