"""The domain classifier: a small CNN that tells the scenario's datasets and classes apart.

It serves two metrics. Its 128-d penultimate features are the fast ``domain`` extractor for
FID/KID (seconds on a CPU, where Inception needs ~0.4 s per image), and its predictions give
the outlier-mode rate (the share of generated samples that land in outlier classes).

``domain_classifier(("mnist", "fmnist"))`` is a classifier of the labelled TRAIN splits of the
named datasets, one class per (dataset, label): 20 classes for MNIST + Fashion-MNIST. With
``noise_class=True`` one more class holds uniform and Gaussian pixel noise (for the synthetic
noise scenarios). The classifiers the registered scenarios need ship with the package, trained
once (:mod:`bench.metrics.domain_pinned`), so these metrics mean the same on every machine.
Any other dataset set, seed or recipe is trained here (seeded, seconds: ``per_class`` images
per class, ``epochs`` passes) and cached in ``cache_dir("domain")`` under a key of the
datasets, noise flag, seed, recipe and ``ARCH_VERSION``; its ``source`` is ``local``, and its
weights, bitwise reproducible on one machine, differ between CPU types. Test accuracy (on the
datasets' test splits) and training time are kept in ``.report``.

``fid_domain`` is NOT comparable to published FID: it measures distances in this network's
feature space, which depends on the training datasets, the recipe and the seed (all recorded in
the protocol). Use it to compare models within this benchmark; use ``fid_inception`` for
numbers comparable to the literature.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from bench.cache import atomic_path, cache_dir
from bench.metrics.domain_pinned import load_pinned_state, pinned_entry, source_label
from bench.provenance import config_hash

ARCH_VERSION = 1
FEATURE_DIM = 128
NOISE_CLASS = "noise"
DatasetLoader = Callable[..., Any]  # bench.data.load_dataset(name, split=...) -> ImageDataset


@dataclass(frozen=True)
class DomainRecipe:
    """How the classifier is trained (part of its cache key)."""

    per_class: int = 1500
    epochs: int = 2
    batch_size: int = 64
    lr: float = 1e-3


def domain_classifier(
    datasets: Sequence[str],
    *,
    seed: int = 0,
    noise_class: bool = False,
    recipe: DomainRecipe = DomainRecipe(),
    loader: DatasetLoader | None = None,
    pinned: bool = True,
) -> DomainClassifier:
    """The classifier for ``datasets``: pinned package weights, else the local cache, else trained.

    With ``pinned`` (the default), a classifier shipped with the package
    (:mod:`bench.metrics.domain_pinned`) is used when one matches the datasets (any order),
    noise flag, seed and recipe: the same weights on every machine, ``source`` names them.
    Otherwise the classifier is trained here (``source == "local"``) and cached; same arguments
    -> the same weights on the same machine only. ``loader`` defaults to
    ``bench.data.load_dataset``.
    """
    datasets = tuple(datasets)
    if not datasets:
        raise ValueError("domain_classifier needs at least one dataset")
    entry = pinned_entry(datasets, noise_class, seed, asdict(recipe)) if pinned else None
    if entry is not None:
        key = source_label(entry)
        if key not in _LOADED_BY_KEY:
            classifier = DomainClassifier(
                tuple(entry["datasets"]), entry["class_names"], noise_class=noise_class
            )
            classifier.load_state_dict(load_pinned_state(entry))
            classifier.report = dict(entry["report"])
            _LOADED_BY_KEY[key] = _ready(classifier, key, source=key)
        return _LOADED_BY_KEY[key]
    key = config_hash(
        {
            "datasets": datasets,
            "noise_class": noise_class,
            "seed": seed,
            "recipe": asdict(recipe),
            "arch_version": ARCH_VERSION,
            # the noise class's images changed in v2 (drawn by bench.scenarios.synthetic_images);
            # only noise classifiers carry the tag, so the others keep their cached weights.
            **({"noise_images": 2} if noise_class else {}),
        }
    )
    if key in _LOADED_BY_KEY:
        return _LOADED_BY_KEY[key]
    path = cache_dir("domain") / f"domain-{key}.pt"
    classifier = _load_cached(path, datasets, noise_class)
    if classifier is None:
        loader = loader or default_loader()
        classifier = train_classifier(
            datasets, seed=seed, noise_class=noise_class, recipe=recipe, loader=loader
        )
        with atomic_path(path) as part:
            torch.save(
                {
                    "class_names": list(classifier.class_names),
                    "state": classifier.state_dict(),
                    "report": classifier.report,
                    "weights_hash": classifier.weights_hash,
                },
                part,
            )
    _LOADED_BY_KEY[key] = _ready(classifier, key, source="local")
    return classifier


def _ready(classifier: DomainClassifier, key: str, *, source: str) -> DomainClassifier:
    classifier.key = key
    classifier.source = source
    classifier.eval().requires_grad_(False)
    return classifier


def _load_cached(path: Path, datasets, noise_class) -> DomainClassifier | None:
    """A locally trained classifier from the cache, or None (absent, corrupt: then retrained).

    Loads weights only (no code runs) and checks the stored weights hash.
    """
    if not path.exists():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        classifier = DomainClassifier(datasets, payload["class_names"], noise_class=noise_class)
        classifier.load_state_dict(payload["state"])
        classifier.report = payload["report"]
        if classifier.weights_hash != payload.get("weights_hash"):
            raise ValueError("the weights do not match their stored hash")
    except Exception as error:  # corrupt or foreign cache file: say which, then retrain
        warnings.warn(f"domain classifier cache {path} is unreadable ({error}); retraining",
                      stacklevel=3)
        return None
    return classifier


class DomainClassifier(nn.Module):
    """CNN on 1 x 28 x 28 images in [0, 1]: two stride-2 convolutions, 128-d features, logits."""

    def __init__(
        self, datasets: tuple[str, ...], class_names: Sequence[str], *, noise_class: bool = False
    ):
        super().__init__()
        self.datasets = tuple(datasets)
        self.class_names = tuple(class_names)
        self.noise_class = noise_class
        self.key = ""
        self.source = "local"  # or "pinned-v<N>:<name>" (bench.metrics.domain_pinned)
        self.report: dict[str, Any] = {}
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1),
            nn.ReLU(),  # 14 x 14
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),  # 7 x 7
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, FEATURE_DIM),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, len(self.class_names))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(_normalize(images)))

    @torch.no_grad()
    def features(self, images: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
        """Penultimate (128-d, post-ReLU) features of float [0, 1] or uint8 N x C x H x W images."""
        return self._batched(lambda x: self.body(_normalize(x)), images, batch_size)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
        """The most likely class index of every image (int64, N)."""
        return self._batched(lambda x: self(x).argmax(1), images, batch_size)

    def outlier_class_mask(
        self, outlier_dataset: str | None = None, *, classes: Sequence[Any] | None = None
    ) -> torch.Tensor:
        """Booleans over ``class_names``: True for the classes that count as outliers.

        ``outlier_dataset`` marks all classes of that dataset (``"noise"``: the noise class);
        ``classes`` marks those labels of the first (inlier) dataset, for scenarios whose
        outliers are held-out classes of the inlier dataset.
        """
        if outlier_dataset is None and classes is None:
            raise ValueError("outlier_class_mask needs an outlier dataset or outlier classes")
        mask = torch.zeros(len(self.class_names), dtype=torch.bool)
        if outlier_dataset is not None:
            if outlier_dataset != NOISE_CLASS and outlier_dataset not in self.datasets:
                raise ValueError(
                    f"the domain classifier was not trained on {outlier_dataset!r} "
                    f"(its datasets: {', '.join(self.datasets)})"
                )
            prefix = f"{outlier_dataset}:" if outlier_dataset != NOISE_CLASS else NOISE_CLASS
            mask |= torch.tensor([n.startswith(prefix) for n in self.class_names])
        if classes is not None:  # ints index the first dataset's classes; strings name them
            first = self.datasets[0]
            wanted = {
                self.class_names[c]
                if isinstance(c, int)
                and 0 <= c < len(self.class_names)
                and self.class_names[c].startswith(f"{first}:")
                else f"{first}:{c}"
                for c in classes
            }
            missing = wanted - set(self.class_names)
            if missing:
                raise ValueError(f"classes {sorted(missing)} are not among {self.class_names}")
            mask |= torch.tensor([n in wanted for n in self.class_names])
        return mask

    @property
    def weights_hash(self) -> str:
        """sha256 (16 hex) of the weights: part of every cache key derived from these features."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    @property
    def extractor_name(self) -> str:
        """The name this classifier is registered under with torch-fidelity."""
        return f"domain-{self.weights_hash[:12]}"

    def _batched(self, fn, images: torch.Tensor, batch_size: int) -> torch.Tensor:
        device = next(self.parameters()).device
        outs = [
            fn(images[i : i + batch_size].to(device)).cpu()
            for i in range(0, len(images), batch_size)
        ]
        return torch.cat(outs) if outs else fn(images[:0].to(device)).cpu()


class DomainFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity extractor around a loaded :class:`DomainClassifier` (looked up by name)."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        self.classifier = _LOADED_BY_EXTRACTOR_NAME[name]

    @staticmethod
    def get_provided_features_list():
        return ("penultimate", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "penultimate"

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 28, 28, dtype=torch.uint8)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.classifier.body(_normalize(images))
        out = {"penultimate": features}
        if "logits" in self.features_list:
            out["logits"] = self.classifier.head(features)
        return tuple(out[name] for name in self.features_list)


def register_with_fidelity(classifier: DomainClassifier) -> str:
    """Register ``classifier`` as a torch-fidelity feature extractor; returns its name."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    name = classifier.extractor_name
    _LOADED_BY_EXTRACTOR_NAME[name] = classifier
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(name, DomainFeatureExtractor)
    return name


_LOADED_BY_KEY: dict[str, DomainClassifier] = {}
_LOADED_BY_EXTRACTOR_NAME: dict[str, DomainClassifier] = {}


def _normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] float, 1 or 3 channels -> float 1-channel in [-1, 1]."""
    x = images.to(torch.float32) / 255 if images.dtype == torch.uint8 else images.to(torch.float32)
    if x.shape[1] == 3:
        x = x.mean(1, keepdim=True)
    return x * 2 - 1


def train_classifier(datasets, *, seed, noise_class, recipe, loader) -> DomainClassifier:
    """A domain classifier trained on ``datasets`` under ``recipe`` (seeded, deterministic)."""
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    train_x, train_y, class_names = _labelled_split(
        datasets, "train", loader, generator, recipe.per_class, noise_class
    )
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
        torch.manual_seed(seed)
        classifier = DomainClassifier(datasets, class_names, noise_class=noise_class)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=recipe.lr)
    classifier.train()
    for _ in range(recipe.epochs):
        order = torch.randperm(len(train_x), generator=generator)
        for i in range(0, len(order), recipe.batch_size):
            batch = order[i : i + recipe.batch_size]
            loss = F.cross_entropy(classifier(train_x[batch]), train_y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    classifier.eval()
    train_seconds = time.perf_counter() - start
    test_x, test_y, _ = _labelled_split(datasets, "test", loader, generator, None, noise_class)
    correct = classifier.predict(test_x) == test_y
    dataset_of = torch.tensor([_dataset_index(n, datasets) for n in class_names])
    same_dataset = dataset_of[classifier.predict(test_x)] == dataset_of[test_y]
    classifier.report = {
        "test_accuracy": float(correct.float().mean()),
        "test_dataset_accuracy": float(same_dataset.float().mean()),
        "n_train": len(train_x),
        "n_test": len(test_x),
        "train_seconds": round(train_seconds, 2),
    }
    return classifier


def _labelled_split(datasets, split, loader, generator, per_class, noise_class):
    """Images (uint8) and labels of all datasets, classes numbered dataset after dataset."""
    images, labels, class_names = [], [], []
    for name in datasets:
        data = loader(name, split=split)
        x, y = data.images, torch.as_tensor(data.labels).long()
        if per_class is not None:
            keep = torch.cat(
                [
                    _first_n(torch.nonzero(y == c).flatten(), per_class, generator)
                    for c in range(len(data.classes))
                ]
            )
            x, y = x[keep], y[keep]
        images.append(x)
        labels.append(y + len(class_names))
        class_names.extend(f"{name}:{c}" for c in data.classes)
    if noise_class:
        count = per_class if per_class is not None else 1000
        images.append(_noise_images(count, images[0].shape[1:], generator))
        labels.append(torch.full((count,), len(class_names), dtype=torch.long))
        class_names.append(NOISE_CLASS)
    return torch.cat(images), torch.cat(labels), class_names


def _noise_images(count, shape, generator) -> torch.Tensor:
    """Half uniform, half Gaussian noise images, drawn exactly as the noise scenarios draw them."""
    from bench.scenarios import synthetic_images

    half = count // 2
    return torch.cat([synthetic_images("uniform-noise", half, shape, generator),
                      synthetic_images("gaussian-noise", count - half, shape, generator)])


def _first_n(indices, n, generator):
    return indices[torch.randperm(len(indices), generator=generator)[:n]]


def _dataset_index(class_name: str, datasets) -> int:
    prefix = class_name.split(":", 1)[0]
    return datasets.index(prefix) if prefix in datasets else len(datasets)


def default_loader() -> DatasetLoader:
    """The cached dataset loader of :mod:`bench.data`."""
    from bench.data import load_dataset

    return load_dataset
