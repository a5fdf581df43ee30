"""The base of the VQ-VAEs that train on a subset they keep (``oracle-vqvae``, ``trimmed-vqvae``).

Budgets are given in epochs, and a model that drops a fraction eps of its training set would take
a fraction eps fewer optimizer steps per epoch than the models it is compared with (at eps = 0.4
on 1000 images and batch 32: 76 steps for the oracle, 89 for trimming, instead of 125 over 4
epochs). Short budgets then leave it under-trained on some seeds (the training-health study
found 4 degenerate oracle/trimmed cells in 80 at eps 0.4, none in the 240 of vqvae, rvqvae and
nsvae). So by default an epoch is as many optimizer steps as the **full** training set gives:

- ``epoch_length="full"`` (default): each epoch takes ``n`` examples (``n`` = the training set's
  size) in batches, drawn as shuffled passes over the kept examples, one after another, cut at
  ``n``; equal steps for every model of a grid. When nothing is dropped this is one shuffled
  pass, the same order as before.
- ``epoch_length="kept"``: one shuffled pass over the kept examples (fewer steps as eps grows).
  Studies recorded before this option existed used it; their presets pin it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rvqvae.models.base import shuffled_passes
from rvqvae.models.vqvae import VQVAE, VQVAEConfig


@dataclass(frozen=True)
class KeptSubsetConfig(VQVAEConfig):
    """:class:`VQVAEConfig` plus how long an epoch is when examples are dropped."""

    epoch_length: str = "full"  # "full": n examples per epoch | "kept": one pass over the kept


class KeptSubsetVQVAE(VQVAE):
    """A VQ-VAE whose ``_start_epoch`` may return fewer examples than the training set holds."""

    Config = KeptSubsetConfig
    option_choices = {**VQVAE.option_choices, "epoch_length": ("full", "kept")}

    def _epoch_order(self, examples: torch.Tensor, n_images: int, generator: torch.Generator
                     ) -> torch.Tensor:
        kept = examples.shape[0]
        if self.config.epoch_length == "kept" or kept >= n_images:
            return super()._epoch_order(examples, n_images, generator)
        return examples[shuffled_passes(kept, n_images, generator)]
