"""``trimmed-vqvae``: a VQ-VAE that trains each epoch on the examples it reconstructs best.

Iterative trimmed loss minimisation (ITLM, Shen & Sanghavi 2019). After ``warmup_epochs``
epochs on everything, each epoch first computes every training example's reconstruction loss
(MSE, no gradient) and trains only on the ``n - round(eps * n)`` examples with the lowest loss
(ties: lower index kept first). eps is ``config.contamination`` if set, else
``fit(contamination=...)``, else estimated each epoch from the losses (``estimate``, Otsu's
threshold). The prior is trained on the set kept in the last epoch. Each epoch is as many
optimizer steps as the whole training set gives (``epoch_length``,
:mod:`rvqvae.models.kept_subset`).

Its counterpart with perfect knowledge, ``oracle-vqvae``, is in :mod:`rvqvae.models.oracle`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rvqvae.models.base import register_model
from rvqvae.models.kept_subset import KeptSubsetConfig, KeptSubsetVQVAE
from rvqvae.models.outlier_split import split_by_score, split_quality


@dataclass(frozen=True)
class TrimmedVQVAEConfig(KeptSubsetConfig):
    """:class:`KeptSubsetConfig` plus the trimming options."""

    warmup_epochs: int = 1
    contamination: float | None = None  # fixed eps; None -> fit's contamination, else estimate
    estimate: str = "otsu"


@register_model("trimmed-vqvae", description="VQ-VAE trained by iterative trimmed loss (ITLM)")
class TrimmedVQVAE(KeptSubsetVQVAE):
    """Each epoch after warm-up trains on the (1 - eps) fraction with the lowest recon loss."""

    Config = TrimmedVQVAEConfig
    score_names = ("recon", "prior_nll")
    default_score = "recon"
    option_choices = {**KeptSubsetVQVAE.option_choices, "estimate": ("otsu",)}

    def __init__(self, config: Any = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.kept: torch.Tensor | None = None  # indices trained on in the last epoch
        self._contamination: float | None = None
        self._true_flags: torch.Tensor | None = None

    def _begin_fit(self, images: torch.Tensor, *, contamination: float | None,
                   outlier_flags: torch.Tensor | None, generator: torch.Generator) -> None:
        self.kept = None
        self._contamination = contamination
        self._true_flags = outlier_flags

    def _start_epoch(self, epoch: int, images: torch.Tensor, generator: torch.Generator):
        n = images.shape[0]
        if epoch < self.config.warmup_epochs:
            self.kept = torch.arange(n)
            return self.kept, {}
        contamination = self.config.contamination
        if contamination is None:
            contamination = self._contamination
        trimmed = split_by_score(self.per_example_recon(images), contamination=contamination,
                                 estimate=self.config.estimate)
        self.kept = (~trimmed).nonzero().flatten()
        count = int(trimmed.sum())
        return self.kept, {"split_outliers": count, "split_fraction": count / max(1, n),
                           **split_quality(trimmed, self._true_flags)}

    def _prior_examples(self, n: int) -> torch.Tensor:
        return self.kept if self.kept is not None else torch.arange(n)
