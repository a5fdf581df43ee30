"""Scenarios: an inlier dataset contaminated by an outlier source at rate epsilon.

A :class:`Scenario` is a frozen spec; ``scenario.build(seed)`` draws the data of one cell:

- **training set**: ``train_size`` = n images, exactly ``round(epsilon * n)`` outliers (Python's
  ``round``, half to even: see :func:`outlier_count`) and the rest inliers, shuffled together;
- **clean test set**: the inlier dataset's *test* split restricted to the inlier classes, the
  first ``clean_test_size`` of them in file order (seed-independent, so FID reference
  statistics are shared by all seeds);
- **mixed test set**: ``k`` inliers from the inlier test split and ``k`` outliers from the
  outlier source's *test* split (never training images), shuffled, where
  ``k = min(test_size, inlier test images, outlier test images)``: balanced at every epsilon.

Outlier sources: a dataset name (``fmnist``: dataset vs dataset), ``classes`` (held-out
``outlier_classes`` of the inlier dataset; default: all classes not in ``inlier_classes``),
``uniform-noise`` (pixels uniform on the 256 levels k/255) or ``gaussian-noise`` (pixels
N(0.5, 0.25^2), clipped to [0, 1] and rounded to the 256 levels). Synthetic outliers have the
inliers' shape and label -1.

Every random choice comes from ``torch.Generator`` seeded from (seed, purpose), so the same
spec and seed give identical data (``ScenarioData.fingerprint()``) on every machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from typing import Any

import torch

from bench.data import DATASETS, load_dataset
from rvqvae.errors import UserError

CLASSES = "classes"
SYNTHETIC = ("uniform-noise", "gaussian-noise")
GAUSSIAN_MEAN, GAUSSIAN_STD = 0.5, 0.25

Drawn = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # uint8 images, labels, source indices


def outlier_count(epsilon: float, n: int) -> int:
    """Outliers in a training set of ``n`` at contamination ``epsilon``: ``round(epsilon * n)``."""
    return round(epsilon * n)


def format_epsilon(epsilon: float) -> str:
    """Epsilon as written in scenario names: ``0``, ``0.05``, ``0.2``."""
    return f"{epsilon:g}"


def synthetic_images(kind: str, count: int, shape: tuple[int, ...],
                     generator: torch.Generator) -> torch.Tensor:
    """``count`` uint8 images of ``shape`` (C x H x W) of a synthetic outlier source.

    ``uniform-noise``: every pixel uniform over the 256 levels; ``gaussian-noise``:
    N(GAUSSIAN_MEAN, GAUSSIAN_STD^2) in [0, 1] units, clipped, rounded to the 256 levels.
    """
    if kind == "uniform-noise":
        return torch.randint(0, 256, (count, *shape), generator=generator, dtype=torch.uint8)
    if kind == "gaussian-noise":
        noise = torch.randn((count, *shape), generator=generator) * GAUSSIAN_STD + GAUSSIAN_MEAN
        return noise.clamp(0, 1).mul(255).round().to(torch.uint8)
    raise ValueError(f"synthetic source {kind!r} is unknown; known: {', '.join(SYNTHETIC)}")


@dataclass(frozen=True)
class Scenario:
    """An inlier dataset, an outlier source and a contamination rate (see the module doc)."""

    name: str
    inlier: str
    outlier: str
    epsilon: float = 0.0
    train_size: int = 10_000
    inlier_classes: tuple[int, ...] | None = None  # None: all classes
    outlier_classes: tuple[int, ...] | None = None  # None: all ("classes": all but the inliers)
    test_size: int = 2_000
    clean_test_size: int = 10_000
    seed: int = 0

    def __post_init__(self) -> None:
        for field in ("inlier_classes", "outlier_classes"):
            value = getattr(self, field)
            if value is not None:
                object.__setattr__(self, field, tuple(int(c) for c in value))
        if self.outlier == CLASSES and self.outlier_classes is None and self.inlier_classes:
            object.__setattr__(
                self, "outlier_classes", _other_classes(self.inlier, self.inlier_classes)
            )
        _validate(self)

    # ------------------------------------------------------------------ what the spec implies
    @property
    def n_outliers(self) -> int:
        return outlier_count(self.epsilon, self.train_size)

    @property
    def n_inliers(self) -> int:
        return self.train_size - self.n_outliers

    @property
    def outlier_kind(self) -> str:
        """``dataset``, ``classes`` or ``synthetic``."""
        if self.outlier == CLASSES:
            return "classes"
        return "synthetic" if self.outlier in SYNTHETIC else "dataset"

    @property
    def outlier_is_dataset(self) -> bool:
        """True for dataset vs dataset (e.g. MNIST inliers, Fashion-MNIST outliers)."""
        return self.outlier_kind == "dataset"

    @property
    def outlier_dataset(self) -> str | None:
        """The dataset the outlier images come from (None for synthetic noise)."""
        return {"dataset": self.outlier, "classes": self.inlier}.get(self.outlier_kind)

    def with_(self, **changes: Any) -> Scenario:
        """A copy with ``changes``; a name ending in ``@<epsilon>`` follows a new epsilon, and
        default ``classes`` outliers (all but the inlier classes) follow new inlier classes."""
        default_outliers = (
            self.outlier_kind == "classes"
            and self.outlier_classes == _other_classes(self.inlier, self.inlier_classes)
        )
        if "inlier_classes" in changes and "outlier_classes" not in changes and default_outliers:
            changes["outlier_classes"] = None
        suffix = f"@{format_epsilon(self.epsilon)}"
        if "epsilon" in changes and "name" not in changes and self.name.endswith(suffix):
            changes["name"] = self.name[: -len(suffix)] + f"@{format_epsilon(changes['epsilon'])}"
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ drawing the data
    def build(self, seed: int | None = None) -> ScenarioData:
        """Draw the training, clean test and mixed test sets for ``seed`` (default: the spec's)."""
        seed = self.seed if seed is None else int(seed)
        train, test = load_dataset(self.inlier, "train"), load_dataset(self.inlier, "test")
        classes = self.inlier_classes

        generator = _generator(seed, "train")
        inliers = _draw(train, classes, self.n_inliers, generator, "inlier training images")
        outliers = self._outliers("train", self.n_outliers, generator)
        train_images, train_is_outlier, train_labels, train_indices = _shuffle_together(
            inliers, outliers, generator
        )

        test_pool = _class_pool(test.labels, classes)
        clean = test_pool[: self.clean_test_size]
        generator = _generator(seed, "test")
        k = min(self.test_size, len(test_pool), self._available_outliers("test"))
        inliers = _draw(test, classes, k, generator, "inlier test images")
        mixed = _shuffle_together(inliers, self._outliers("test", k, generator), generator)
        return ScenarioData(
            scenario=self,
            seed=seed,
            train_images=train_images,
            train_is_outlier=train_is_outlier,
            train_labels=train_labels,
            train_indices=train_indices,
            clean_test_images=_to_float(test.images[clean]),
            clean_test_labels=test.labels[clean],
            mixed_test_images=mixed[0],
            mixed_test_is_outlier=mixed[1],
            mixed_test_labels=mixed[2],
            mixed_test_indices=mixed[3],
        )

    def _outliers(self, split: str, count: int, generator: torch.Generator) -> Drawn:
        if self.outlier_kind != "synthetic":
            source = load_dataset(self.outlier_dataset, split)
            return _draw(source, self.outlier_classes, count, generator, f"outlier {split} images")
        images = synthetic_images(self.outlier, count, DATASETS.get(self.inlier).image_shape,
                                  generator)
        return images, torch.full((count,), -1, dtype=torch.int64), torch.arange(count)

    def _available_outliers(self, split: str) -> int:
        if self.outlier_kind == "synthetic":
            return self.test_size
        labels = load_dataset(self.outlier_dataset, split).labels
        return len(_class_pool(labels, self.outlier_classes))


@dataclass(frozen=True, eq=False)
class ScenarioData:
    """The images of one scenario cell; images are float32 N x C x H x W in [0, 1].

    ``*_indices`` index the source split of each image (the inlier or outlier dataset's
    train/test split, or the position in the synthetic noise batch); labels are the source
    dataset's labels (-1 for synthetic noise).
    """

    scenario: Scenario
    seed: int
    train_images: torch.Tensor
    train_is_outlier: torch.Tensor  # bool N
    train_labels: torch.Tensor  # int64 N
    train_indices: torch.Tensor  # int64 N
    clean_test_images: torch.Tensor
    clean_test_labels: torch.Tensor
    mixed_test_images: torch.Tensor
    mixed_test_is_outlier: torch.Tensor
    mixed_test_labels: torch.Tensor
    mixed_test_indices: torch.Tensor

    @property
    def contamination(self) -> float:
        """The realised fraction of outliers in the training set."""
        return float(self.train_is_outlier.float().mean())

    def fingerprint(self) -> str:
        """sha256 over every chosen index, flag, label and pixel: equal iff the data is equal."""
        digest = hashlib.sha256()
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, torch.Tensor):
                if value.is_floating_point():
                    value = value.mul(255).round().to(torch.uint8)
                digest.update(field.name.encode())
                digest.update(value.contiguous().numpy().tobytes())
        return digest.hexdigest()


# ---------------------------------------------------------------------- helpers


def _validate(s: Scenario) -> None:
    """Raise :class:`UserError` ("scenario 'name': what is wrong") for an inconsistent spec."""

    def fail(message: str) -> None:
        raise UserError(f"scenario {s.name!r}: {message}")

    if not isinstance(s.epsilon, (int, float)) or not 0 <= s.epsilon < 1 or math.isnan(s.epsilon):
        fail(f"epsilon must be in [0, 1) (outliers / all training samples), got {s.epsilon}")
    for field in ("train_size", "test_size", "clean_test_size"):
        if not isinstance(getattr(s, field), int) or getattr(s, field) < 1:
            fail(f"{field} must be a positive integer, got {getattr(s, field)!r}")
    if isinstance(s.seed, bool) or not isinstance(s.seed, int) or not 0 <= s.seed < 2**32:
        fail(f"seed must be an integer in [0, 2**32), got {s.seed!r}")
    inlier = DATASETS.get(s.inlier)  # UserError listing the known datasets
    known_sources = [CLASSES, *SYNTHETIC, *DATASETS.names()]
    if s.outlier not in known_sources:
        fail(f"outlier source {s.outlier!r} is unknown; known: {', '.join(known_sources)}")
    if s.outlier == s.inlier:
        fail(
            f"outlier {s.outlier!r} is the inlier dataset; "
            "use outlier='classes' with outlier_classes"
        )
    outlier_num_classes = DATASETS.get(s.outlier_dataset or s.inlier).num_classes
    for field, classes, num_classes in (
        ("inlier_classes", s.inlier_classes, inlier.num_classes),
        ("outlier_classes", s.outlier_classes, outlier_num_classes),
    ):
        if classes is not None and not _distinct_in_range(classes, num_classes):
            fail(f"{field} must be distinct class indices in 0..{num_classes - 1}, got {classes}")
    if s.outlier_kind == "classes":
        if s.inlier_classes is None:
            fail("outlier 'classes' needs inlier_classes (the others are outliers)")
        overlap = set(s.outlier_classes) & set(s.inlier_classes)
        if overlap or not s.outlier_classes:
            both = sorted(overlap)
            fail(
                "outlier_classes must be non-empty and disjoint from inlier_classes "
                f"(both hold {both})"
            )
    elif s.outlier_kind == "dataset":
        shapes = DATASETS.get(s.outlier).image_shape, inlier.image_shape
        if shapes[0] != shapes[1]:
            fail(
                f"inlier {s.inlier} images are {_shape(shapes[1])} but outlier {s.outlier} images "
                f"are {_shape(shapes[0])}; pick datasets of the same shape"
            )
    elif s.outlier_classes is not None:
        fail(f"outlier_classes makes no sense for synthetic outliers ({s.outlier})")
    for role, dataset, classes, needed in (
        ("inlier", s.inlier, s.inlier_classes, s.n_inliers),
        ("outlier", s.outlier_dataset, s.outlier_classes, s.n_outliers),
    ):
        available = _available_training_images(dataset, classes)
        if available is not None and needed > available:
            fail(
                f"needs {needed} {role} training images but {_describe(dataset, classes)} has "
                f"{available}; lower train_size or epsilon"
            )


def _other_classes(dataset: str, classes: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """The classes of ``dataset`` not in ``classes`` (None when ``dataset`` is unknown)."""
    if dataset not in DATASETS or classes is None:
        return None
    return tuple(c for c in range(DATASETS.get(dataset).num_classes) if c not in classes)


def _distinct_in_range(classes: tuple[int, ...], num_classes: int) -> bool:
    return (
        bool(classes)
        and len(set(classes)) == len(classes)
        and min(classes) >= 0
        and max(classes) < num_classes
    )


def _available_training_images(dataset: str | None, classes: tuple[int, ...] | None) -> int | None:
    """Exact count when the dataset's content is pinned by hashes (else checked when drawn)."""
    counts = DATASETS.get(dataset).class_counts if dataset is not None else None
    if counts is None:
        return None
    return sum(n for c, n in enumerate(counts["train"]) if classes is None or c in classes)


def _class_pool(labels: torch.Tensor, classes: tuple[int, ...] | None) -> torch.Tensor:
    """Indices (in file order) of the images whose label is in ``classes`` (all if None)."""
    if classes is None:
        return torch.arange(len(labels))
    return torch.isin(labels, torch.tensor(classes, dtype=labels.dtype)).nonzero().flatten()


def _draw(dataset, classes, count: int, generator: torch.Generator, what: str) -> Drawn:
    """``count`` images of ``classes`` drawn without replacement (uint8 images, labels, indices)."""
    pool = _class_pool(dataset.labels, classes)
    if count > len(pool):
        raise UserError(
            f"needs {count} {what} ({_describe(dataset.name, classes)}) but only {len(pool)} "
            f"exist; lower the sizes or epsilon"
        )
    index = pool[torch.randperm(len(pool), generator=generator)[:count]]
    return dataset.images[index], dataset.labels[index], index


def _shuffle_together(inliers: Drawn, outliers: Drawn, generator: torch.Generator):
    """(float images, is_outlier, labels, indices) of inliers and outliers in a random order."""
    flags = torch.cat(
        [
            torch.zeros(len(inliers[2]), dtype=torch.bool),
            torch.ones(len(outliers[2]), dtype=torch.bool),
        ]
    )
    order = torch.randperm(len(flags), generator=generator)
    images, labels, indices = (
        torch.cat([a, b])[order] for a, b in zip(inliers, outliers, strict=True)
    )
    return _to_float(images), flags[order], labels, indices


def _generator(seed: int, purpose: str) -> torch.Generator:
    """An independent generator per (seed, purpose): changing test sizes keeps the train draw."""
    digest = hashlib.sha256(f"rvqvae-bench/{seed}/{purpose}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def _to_float(images: torch.Tensor) -> torch.Tensor:
    return images.to(torch.float32).div_(255)


def _describe(dataset: str, classes: tuple[int, ...] | None) -> str:
    return dataset if classes is None else f"{dataset} classes {list(classes)}"


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))
