"""Train the pinned domain classifiers here and write their files and the manifest
(:mod:`bench.metrics.domain_pinned`): a new ``PIN_VERSION`` means every baseline must be
re-recorded.

    python -m bench.studies.pin_domain_classifiers --write
"""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import asdict
from typing import Any

import torch

from bench.cache import sha256_file
from bench.metrics.domain import DomainRecipe, default_loader, train_classifier
from bench.metrics.domain_pinned import (
    MANIFEST,
    PIN_VERSION,
    PINNED_DIR,
    PINNED_SETS,
    features_checksum,
)
from bench.provenance import device_name, package_versions


def write_pinned() -> dict[str, Any]:
    """Train every classifier of ``PINNED_SETS`` here and write the files and the manifest."""
    PINNED_DIR.mkdir(exist_ok=True)
    recipe = DomainRecipe()
    classifiers = {}
    for name, (datasets, noise_class) in PINNED_SETS.items():
        print(f"training {name} ...", flush=True)
        classifier = train_classifier(datasets, seed=0, noise_class=noise_class, recipe=recipe,
                                      loader=default_loader())
        buffer = io.BytesIO()
        torch.save({k: v.contiguous() for k, v in classifier.state_dict().items()}, buffer)
        file = f"domain-v{PIN_VERSION}-{name}.pt"
        (PINNED_DIR / file).write_bytes(buffer.getvalue())
        classifiers[name] = {
            "file": file, "sha256": sha256_file(PINNED_DIR / file), "pin_version": PIN_VERSION,
            "datasets": list(datasets), "noise_class": noise_class,
            "class_names": list(classifier.class_names), "seed": 0, "recipe": asdict(recipe),
            "report": classifier.report, "features_checksum": features_checksum(classifier),
            "trained_on": device_name("cpu"), "torch": package_versions().get("torch"),
        }
    manifest = {"pin_version": PIN_VERSION, "classifiers": classifiers}
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="train and write the pinned files")
    if parser.parse_args().write:
        for key, value in write_pinned()["classifiers"].items():
            print(key, value["sha256"][:16], value["report"])
