"""``oracle-vqvae``: a VQ-VAE trained (autoencoder and prior) on the true inliers only.

It uses the ``outlier_flags`` passed to ``fit`` to drop every true outlier before training: the
upper bound a robust method (``rvqvae``, ``trimmed-vqvae``) can hope to reach. Each epoch is as
many optimizer steps as the whole training set gives (``epoch_length``,
:mod:`rvqvae.models.kept_subset`).
"""

from __future__ import annotations

from typing import Any

import torch

from rvqvae.errors import UserError
from rvqvae.models.base import register_model
from rvqvae.models.kept_subset import KeptSubsetVQVAE


@register_model("oracle-vqvae", description="VQ-VAE trained on the true inliers only (upper bound)")
class OracleVQVAE(KeptSubsetVQVAE):
    """A VQ-VAE that drops the true outliers (``outlier_flags``) before training."""

    def __init__(self, config: Any = None, **overrides: Any):
        super().__init__(config, **overrides)
        self._inliers: torch.Tensor | None = None

    def _begin_fit(self, images: torch.Tensor, *, contamination: float | None,
                   outlier_flags: torch.Tensor | None, generator: torch.Generator) -> None:
        if outlier_flags is None:
            raise UserError(
                "oracle-vqvae needs the true outlier flags: pass outlier_flags to fit()")
        self._inliers = (~outlier_flags).nonzero().flatten()
        if self._inliers.shape[0] == 0:
            raise UserError(
                "oracle-vqvae got no inliers: every training image is flagged as an outlier")

    def _start_epoch(self, epoch: int, images: torch.Tensor, generator: torch.Generator):
        return self._inliers, {}

    def _prior_examples(self, n: int) -> torch.Tensor:
        return self._inliers
