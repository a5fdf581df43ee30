"""The interface every model implements, and the model registry.

A model is a ``torch.nn.Module`` built from a frozen config dataclass. The harness only ever
calls the methods below, so any registered model runs by name:

>>> model = create_model("vqvae", epochs=2)          # overrides go into the config
>>> history = model.fit(images, seed=0)               # images: float N x C x H x W in [0, 1]
>>> samples = model.sample(64, seed=0)                # same value range as the training images
>>> scores = model.outlier_scores(images)             # {score name: tensor (N,)}, higher = outlying

Conventions: images are float32 in [0, 1]; every random choice in ``fit`` and ``sample`` flows
from the ``seed`` argument (same seed on CPU -> identical weights and samples); ``fit`` returns
one dict per epoch (at least ``epoch`` and ``loss``).

Devices: ``model.to(device)`` before ``fit`` puts every module, and every tensor the model
creates (in fit, sample, scores, the prior, the RVQ split), on that device; ``fit`` rebuilds the
modules on the device the model is on. Data sets stay where they are given (the CPU, usually):
models move one batch at a time to their device and return samples, scores, reconstructions
and codes on the CPU. Random draws come from CPU generators and are moved, so a seed means the
same choices on every device.
"""

from __future__ import annotations

import dataclasses
import io
import math
import pickle
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from rvqvae.atomic import atomic_path
from rvqvae.errors import NonFiniteError, UserError
from rvqvae.fields import typed_fields
from rvqvae.registry import Registry

EpochCallback = Callable[[dict[str, Any]], None]


class GenerativeModel(nn.Module, ABC):
    """Base class of all registered models.

    Subclasses set ``Config`` (a frozen dataclass with defaults for every field),
    ``score_names`` (all outlier scores the model exposes) and ``default_score``.
    """

    Config: ClassVar[type]
    score_names: ClassVar[tuple[str, ...]] = ("recon",)
    default_score: ClassVar[str] = "recon"

    def __init__(self, config: Any = None, **overrides: Any):
        super().__init__()
        config = config if config is not None else self.Config()
        self.config = dataclasses.replace(config, **overrides) if overrides else config

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters and buffers (where it computes)."""
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    # -- training -------------------------------------------------------------------------
    @abstractmethod
    def fit(
        self,
        images: torch.Tensor,
        *,
        seed: int = 0,
        epochs: int | None = None,
        contamination: float | None = None,
        outlier_flags: torch.Tensor | None = None,
        negatives: torch.Tensor | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> list[dict[str, Any]]:
        """Train on ``images``; return the per-epoch history.

        ``epochs`` overrides ``config.epochs``. ``contamination`` is the outlier fraction the
        robust models assume (epsilon-hat); ``outlier_flags`` are the true flags, used only by
        models that are allowed to see them (the oracle); ``negatives`` are auxiliary negative
        images for models that use them. Models ignore what they do not use.
        ``on_epoch(record)`` is called after every epoch (progress reporting).
        """

    # -- inference ------------------------------------------------------------------------
    @abstractmethod
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstructions of ``images`` in the same value range."""

    @abstractmethod
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """``n`` generated images (float, N x C x H x W, in [0, 1]), reproducible from ``seed``."""

    @abstractmethod
    def outlier_scores(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every outlier score the model exposes, by name; higher = more outlying."""

    def outlier_score(self, images: torch.Tensor) -> torch.Tensor:
        """The default outlier score (``default_score``)."""
        return self.outlier_scores(images)[self.default_score]

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Save config and weights (and any fitted state registered as buffers).

        The config is stored as plain data (a dict of primitives), so :meth:`load` reads the
        file with ``weights_only=True``. Written to a unique temporary file and renamed:
        concurrent writers never collide and a killed writer leaves no half-written file.
        """
        with atomic_path(path) as tmp:
            tmp.write_bytes(self.to_bytes())

    def to_bytes(self) -> bytes:
        """The checkpoint :meth:`save` writes, in memory (e.g. to send from a worker)."""
        payload = {
            "model": model_name(type(self)),
            "config": dataclasses.asdict(self.config),
            "state": self.state_dict(),
            "extra": self.extra_state(),
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        return buffer.getvalue()

    @classmethod
    def load(cls, path: str | Path) -> GenerativeModel:
        """Load a model saved by :meth:`save`; the registered class is looked up by name.

        Reads with ``torch.load(..., weights_only=True)``: a checkpoint can hold tensors and
        plain data only, never code. A file that is not such a checkpoint raises
        :class:`UserError` naming it.
        """
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise UserError(f"cannot load model checkpoint {path}: it holds more than tensors "
                            f"and plain data (refused by weights_only=True); only load "
                            f"checkpoints written by GenerativeModel.save") from None
        except Exception as error:  # truncated or foreign files fail in many ways
            first = (str(error).strip().splitlines() or [""])[0]
            raise UserError(f"cannot load model checkpoint {path}: {type(error).__name__}: "
                            f"{first[:200]}") from None
        if not isinstance(payload, dict) or not {"model", "config", "state"} <= set(payload):
            raise UserError(f"{path} is not a model checkpoint written by GenerativeModel.save")
        model_cls = MODELS.get(payload["model"])
        model = model_cls(model_cls.Config(**payload["config"]))
        model.load_extra_state(payload.get("extra") or {})
        model.load_state_dict(payload["state"])
        model.eval()
        return model

    def extra_state(self) -> dict[str, Any]:
        """Fitted state that is not a parameter or buffer (saved with the weights)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state`; called before ``load_state_dict``."""


def require_finite(tensor: torch.Tensor, what: str = "images") -> torch.Tensor:
    """``tensor`` unchanged; a ``ValueError`` naming ``what`` when it holds NaN or infinity.

    Every model calls this on the images given to ``fit``, ``outlier_scores`` and
    ``reconstruct``: non-finite inputs would train or score silently into NaN.
    """
    return NonFiniteError.check(tensor, f"{what} hold", "clean the data first")


def require_images(images: torch.Tensor) -> None:
    """A ``ValueError`` when ``fit`` gets no image at all."""
    if images.shape[0] == 0:
        raise ValueError("fit needs at least one training image, got 0")


def check_sample_count(n: Any) -> int:
    """``n`` as an int >= 0 (``sample(n)``); a ``ValueError`` otherwise."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"sample(n) needs an integer n >= 0, got {n!r}")
    return n


def check_loss(loss: float, *, epoch: int, batch: int, what: str = "training loss") -> None:
    """Stop training at the first non-finite loss: ``FloatingPointError`` naming where.

    Raising (instead of training on) makes the harness record the cell as failed with this
    line, instead of recording NaN samples and metrics.
    """
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"{what} is {loss} at epoch {epoch}, batch {batch}; lower the learning rate or "
            f"check the data")


def raise_if_diverged(module: nn.Module, *, epoch: int, batch: int) -> None:
    """After a batch raised: when the weights hold NaN/infinity, training diverged, and that
    (not the downstream symptom, e.g. a quantizer refusing NaN latents) is what raises."""
    if not all(bool(torch.isfinite(p).all()) for p in module.parameters()):
        check_loss(math.nan, epoch=epoch, batch=batch)


MODELS: Registry[type[GenerativeModel]] = Registry("model", base=GenerativeModel)


def shuffled_passes(count: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """``length`` indices into ``range(count)``: shuffled passes over it, one after another, cut
    at ``length`` (one ``randperm`` per pass; ``length == count`` is one shuffled pass)."""
    if count == 0:
        return torch.zeros(0, dtype=torch.long)
    passes = -(-length // count)  # ceil
    return torch.cat([torch.randperm(count, generator=generator) for _ in range(passes)])[:length]


def register_model(name: str, *, description: str = "", **info: Any):
    """Class decorator: ``@register_model("vqvae")`` makes the model runnable by name."""
    return MODELS.register(name, description=description, **info)


def create_model(name: str, **overrides: Any) -> GenerativeModel:
    """A fresh model registered as ``name`` with config fields overridden by keyword.

    Every override is checked against the config dataclass before the model is built: an
    unknown name, a value of the wrong type (:mod:`rvqvae.fields`), a negative integer or
    ``epochs < 1`` is one :class:`UserError` naming the option.
    """
    model_cls = MODELS.get(name)
    fields = {f.name for f in dataclasses.fields(model_cls.Config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise UserError(
            f"model {name!r} has no option(s) {', '.join(unknown)}; "
            f"options: {', '.join(sorted(fields))}"
        )
    overrides = typed_fields(model_cls.Config, overrides, where=f"model {name!r} options")
    for option, value in overrides.items():
        least = 1 if option == "epochs" else 0
        if isinstance(value, int) and not isinstance(value, bool) and value < least:
            raise UserError(f"model {name!r} options: {option} must be >= {least}, got {value}")
    return model_cls(**overrides)


def model_name(model_cls: type) -> str:
    for entry in MODELS.entries():
        if entry.obj is model_cls:
            return entry.name
    raise KeyError(f"{model_cls.__name__} is not a registered model")


def default_config(name: str) -> dict[str, Any]:
    """The default hyper-parameters of a registered model, as a plain dict."""
    return dataclasses.asdict(MODELS.get(name).Config())
