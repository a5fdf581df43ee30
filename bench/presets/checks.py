"""Every input of a grid checked before its first cell runs.

:func:`check_preset` raises one :class:`~rvqvae.errors.UserError` (the CLI prints it as one
line and exits 2) for the first problem it finds, in this order: field types, empty lists,
seeds (non-negative integers below 2**32, distinct), sizes (>= 1; ``n_samples`` >= 2 for
FID/KID), the device string (``cpu``, ``cuda`` or ``cuda:N``, and the GPU must exist),
feature extractor names, scenario names and their sizes against the data, the sample count
(at most :data:`MAX_SAMPLES`), model names and options (unknown names, wrong types,
``epochs < 1``, the model's own checks), labels that would give two cells the same id, and
the data files the scenarios read (in the cache and intact).
"""

from __future__ import annotations

import dataclasses
import math
import re

from bench.presets.spec import ModelSpec, Preset, sized_scenario
from rvqvae.errors import UserError
from rvqvae.fields import typed_fields

SEED_LIMIT = 2**32
#: generated samples per cell: a cell holds them in memory at once (float32 images), and the
#: customary FID sample count, 50000, fits with room to spare
MAX_SAMPLES = 100_000
DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:\d+)?)$")


def check_preset(preset: Preset, *, gpu_here: bool = True) -> None:
    """Raise :class:`UserError` for the first bad input of ``preset`` (see the module doc).

    ``gpu_here=False``: a ``cuda`` device need not exist on this machine (a Ray cluster's GPUs
    are checked when the cluster is reached)."""
    from bench.metrics.evaluate import METRICS
    from bench.metrics.extractors import EXTRACTORS
    from rvqvae.models import create_model

    where = f"preset {preset.name!r}"
    values = {f.name: getattr(preset, f.name) for f in dataclasses.fields(Preset)}
    typed_fields(Preset, values, where=where)
    for spec in preset.models:
        typed_fields(ModelSpec, dataclasses.asdict(spec), where=f"{where}: model {spec.name!r}")
    for name in ("scenarios", "models", "seeds", "extractors"):
        if not getattr(preset, name):
            raise UserError(f"{where}: {name} is empty; give at least one")
    check_seeds(preset.seeds, where)
    for name in ("train_size", "test_size", "clean_test_size", "n_samples"):
        value, least = getattr(preset, name), 2 if name == "n_samples" else 1
        if value is not None and value < least:
            why = " (FID/KID need at least 2 samples)" if name == "n_samples" else ""
            raise UserError(f"{where}: {name} must be >= {least}{why}, got {value}")
    check_device(preset.device, gpu_here=gpu_here)
    for name in preset.extractors:
        EXTRACTORS.get(name)
    for name in preset.metrics:
        METRICS.get(name)
    for name in preset.scenarios:
        sized_scenario(preset, name)
    check_sample_count(preset, where)
    for spec in preset.models:
        try:
            create_model(spec.name, **spec.options)
        except (ValueError, TypeError) as error:  # the model's own checks of its config
            raise UserError(f"{where}: model {spec.display!r}: {error}") from None
    displays = [spec.display for spec in preset.models]
    twice = sorted({d for d in displays if displays.count(d) > 1})
    if twice:
        raise UserError(f"{where}: several models are shown as {', '.join(twice)}; give each "
                        f"a distinct label")
    check_data_files(preset)


def check_data_files(preset: Preset) -> None:
    """The verified datasets the scenarios read are in the cache and intact (sha256), so a
    missing or corrupt file is one error now, not a failure in every cell."""
    from bench.data.fetching import check_cached
    from bench.scenarios import get_scenario

    scenarios = [get_scenario(name) for name in preset.scenarios]
    check_cached([name for s in scenarios for name in (s.inlier, s.outlier_dataset) if name])


def check_seeds(seeds, where: str) -> None:
    """Seeds are distinct integers in [0, 2**32) (what ``torch.manual_seed`` takes everywhere)."""
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
            raise UserError(f"{where}: seeds must be integers in [0, 2**32), got {seed!r}")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"{where}: seeds repeat ({', '.join(map(str, seeds))})")


def check_sample_count(preset: Preset, where: str) -> None:
    """At most :data:`MAX_SAMPLES` samples per cell; the error says what more would weigh."""
    if preset.n_samples <= MAX_SAMPLES:
        return
    from bench.data import DATASETS
    from bench.scenarios import get_scenario

    pixels = max(math.prod(DATASETS.get(get_scenario(name).inlier).image_shape)
                 for name in preset.scenarios)
    raise UserError(f"{where}: n_samples must be <= {MAX_SAMPLES}, got {preset.n_samples}: a "
                    f"cell holds its samples in memory at once "
                    f"({preset.n_samples * pixels * 4 / 1e9:.3g} GB of float32 images here), "
                    f"and FID's customary 50000 samples fit the bound")


def check_device(device: str, *, gpu_here: bool = True) -> None:
    """``cpu``, ``cuda`` or ``cuda:N`` naming a visible GPU (with ``gpu_here``); anything else
    is a UserError."""
    if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
        raise UserError(f"device {device!r} is not supported; use cpu, cuda or cuda:N")
    if device.partition(":")[0] == "cuda" and gpu_here:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            raise UserError(f"device {device!r} needs a CUDA GPU number {index} and "
                            f"{count or 'none'} {'is' if count < 2 else 'are'} visible; pass "
                            f"--device cpu to run on the CPU (slow)")
