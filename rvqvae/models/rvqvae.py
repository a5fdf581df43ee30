"""RVQ-VAE, robust VQ-VAE (Lai, Zou, Lerman 2022, arXiv 2202.01987), as far as its abstract goes.

What the abstract states, implemented as stated:
- two codebooks, ``inlier_codebook`` and ``outlier_codebook``, one shared encoder and decoder;
- quantisation by a weighted Euclidean distance whose weights come from each codebook's
  directional variances;
- the inlier and outlier sets are re-chosen iteratively, every epoch;
- encoder, decoder and both codebooks trained jointly on reconstruction + quantisation loss
  (codebook loss + beta * commitment, straight-through estimator: the VQ-VAE loop, unchanged).

Every unstated choice is an option of :class:`RVQVAEConfig` (defaults in brackets):
- ``weighting`` ["coordinate"]: ``d_C(z, e) = sum_j (z_j - e_j)^2 / (var_Cj + eps)`` with var_C
  the per-coordinate variance of codebook C's codewords; "direction": ``|z - e|^2 /
  (u' S_C u + eps)``, ``u = (z - e)/|z - e|``, S_C the codebook covariance; "none": plain.
  ``eps`` = ``weight_epsilon``. Weights are recomputed from the detached codebooks at every
  step (``weight_update="step"``) or once per epoch ("epoch"). The loss terms use the plain
  squared error (the weights only decide which codeword a latent is matched to).
- warm-up [``warmup_epochs=1``, at least 1]: every latent uses its nearest codeword over both
  codebooks, each codebook with its own weights (ties -> inlier codebook).
- split [``split_score="distance_gap"``]: per example, the mean over its latent positions of
  (min distance to the inlier codebook - min distance to the outlier codebook);
  "outlier_fraction": the fraction of its latents whose nearest codeword over both codebooks is
  an outlier codeword. After each epoch from the end of warm-up on, the round(eps * n) highest
  scores are the outlier set of the next epoch (see :mod:`rvqvae.models.outlier_split`);
  inliers are then quantised with the inlier codebook only, outliers with the outlier one only.
- eps: ``config.contamination`` if set, else ``fit(contamination=...)``, else estimated by
  ``estimate`` ["otsu"] from the split scores each epoch.
- generation: the prior is trained on the inlier set's inlier-codebook codes; samples decode
  inlier codewords only. Inference (reconstruct, codes, ``recon`` and ``prior_nll`` scores)
  quantises with the inlier codebook only.

``outlier_flags`` given to ``fit`` are used only to report the split's precision, recall and
the AUROC of the split score (``split_precision``, ``split_recall``, ``split_auroc``) in the
history; training is identical with and without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from rvqvae import quantize
from rvqvae.errors import UserError
from rvqvae.models.base import register_model
from rvqvae.models.codebook import Codebook
from rvqvae.models.outlier_split import split_by_score, split_quality
from rvqvae.models.vqvae import VQVAE, VQVAEConfig, _to_rows, check_images


@dataclass(frozen=True)
class RVQVAEConfig(VQVAEConfig):
    """:class:`VQVAEConfig` (``codebook_size`` = inlier codebook size) plus the RVQ options."""

    outlier_codebook_size: int = 32
    weighting: str = "coordinate"  # "coordinate" | "direction" | "none"
    weight_epsilon: float = 1e-4
    weight_update: str = "step"  # "step" | "epoch"
    warmup_epochs: int = 1
    split_score: str = "distance_gap"  # "distance_gap" | "outlier_fraction"
    contamination: float | None = None  # fixed eps; None -> fit's contamination, else estimate
    estimate: str = "otsu"


@register_model(
    "rvqvae", description="Robust VQ-VAE (Lai, Zou, Lerman 2022): inlier + outlier codebooks")
class RVQVAE(VQVAE):
    """VQ-VAE with an inlier and an outlier codebook, re-splitting the training set every epoch."""

    Config = RVQVAEConfig
    score_names = ("split", "recon", "prior_nll")
    default_score = "split"
    option_choices: ClassVar[dict[str, tuple[str, ...]]] = {
        **VQVAE.option_choices,
        "weighting": ("coordinate", "direction", "none"),
        "weight_update": ("step", "epoch"),
        "split_score": ("distance_gap", "outlier_fraction"),
        "estimate": ("otsu",),
    }

    def __init__(self, config: Any = None, **overrides: Any):
        super().__init__(config, **overrides)
        if self.config.warmup_epochs < 1:
            raise UserError("rvqvae warmup_epochs must be >= 1: the first split needs a trained "
                            f"encoder, got {self.config.warmup_epochs}")
        self.outlier_set: torch.Tensor | None = None  # bool (n,) after the first split
        self._contamination: float | None = None
        self._true_flags: torch.Tensor | None = None
        self._epoch_metrics: tuple[Any, Any] | None = None
        self._freeze_metrics = False  # weight_update="epoch": keep the first weights of an epoch

    # -- public ---------------------------------------------------------------------------
    @torch.no_grad()
    def split_scores(self, images: torch.Tensor) -> torch.Tensor:
        """The per-example score the split ranks by (``config.split_score``); higher = outlier."""
        images = check_images(images)
        out = []
        for batch in images.split(self.config.inference_batch_size):
            encoded = self.encoder(batch)
            _, d_in = self.codebook_search(_to_rows(encoded), "inlier")
            _, d_out = self.codebook_search(_to_rows(encoded), "outlier")
            if self.config.split_score == "outlier_fraction":
                per_latent = (d_out < d_in).float()
            else:
                per_latent = d_in - d_out
            out.append(per_latent.view(batch.shape[0], -1).mean(1))
        return torch.cat(out) if out else torch.zeros(0)

    def codebook_search(
        self, latents: torch.Tensor, which: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest codeword of ``which`` ("inlier" or "outlier") codebook under the configured
        weighted distance: ``(indices into that codebook, distances)``."""
        book = self.inlier_codebook if which == "inlier" else self.outlier_codebook
        metric = self._metrics()[0 if which == "inlier" else 1]
        codewords = book.weight.detach()
        backend = self.config.quantize_backend
        if self.config.weighting == "direction":
            return quantize.nearest_directional(latents, codewords, metric,
                                                eps=self.config.weight_epsilon, backend=backend)
        return quantize.nearest(latents, codewords, metric, backend=backend)

    def outlier_scores(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``split`` (the split score), ``recon`` and ``prior_nll`` (inlier codebook only)."""
        return {"split": self.split_scores(images), **super().outlier_scores(images)}

    # -- hooks ----------------------------------------------------------------------------
    def _build_codebooks(self) -> None:
        self.inlier_codebook = self._new_codebook(self.config.codebook_size)
        self.outlier_codebook = self._new_codebook(self.config.outlier_codebook_size)

    def _codebooks(self) -> list[Codebook]:
        return [self.inlier_codebook, self.outlier_codebook]

    def _begin_fit(self, images: torch.Tensor, *, contamination: float | None,
                   outlier_flags: torch.Tensor | None, generator: torch.Generator) -> None:
        self.outlier_set = None
        self._contamination = contamination
        self._true_flags = outlier_flags
        self._epoch_metrics = None
        self._freeze_metrics = False

    def _start_epoch(self, epoch: int, images: torch.Tensor, generator: torch.Generator):
        # With weight_update="epoch" the weights are frozen at their first use in the epoch: not
        # here, because on epoch 0 the codebooks are initialised from data only after this hook.
        self._epoch_metrics = None
        self._freeze_metrics = self.config.weight_update == "epoch"
        return torch.arange(images.shape[0]), {}

    def _assign_codes(
        self, latents: torch.Tensor, example_ids: torch.Tensor | None
    ) -> torch.Tensor:
        inlier_codes, d_in = self.codebook_search(latents, "inlier")
        if example_ids is None:
            return inlier_codes
        outlier_codes, d_out = self.codebook_search(latents, "outlier")
        if self.outlier_set is None:  # warm-up: nearest over both codebooks
            use_outlier = d_out < d_in
        else:
            per_example = self.outlier_set[example_ids]
            use_outlier = per_example.repeat_interleave(latents.shape[0] // example_ids.shape[0])
        return torch.where(use_outlier, outlier_codes + self.inlier_codebook.size, inlier_codes)

    def _end_epoch(self, epoch: int, images: torch.Tensor, generator: torch.Generator
                   ) -> dict[str, Any]:
        self._epoch_metrics = None  # the split (and inference) use the codebooks as they are now
        self._freeze_metrics = False
        if epoch + 1 < self.config.warmup_epochs:
            return {}
        return self._resplit(images)

    def _prior_examples(self, n: int) -> torch.Tensor:
        if self.outlier_set is None:
            return torch.arange(n)
        return (~self.outlier_set).nonzero().flatten()

    # -- internals ------------------------------------------------------------------------
    def _resplit(self, images: torch.Tensor) -> dict[str, Any]:
        contamination = self.config.contamination
        if contamination is None:
            contamination = self._contamination
        scores = self.split_scores(images)
        self.outlier_set = split_by_score(scores, contamination=contamination,
                                          estimate=self.config.estimate)
        count = int(self.outlier_set.sum())
        return {"split_outliers": count,
                "split_fraction": count / max(1, images.shape[0]),
                **split_quality(self.outlier_set, self._true_flags, scores)}

    def _metrics(self) -> tuple[Any, Any]:
        """Per codebook: weights (D,) ("coordinate"), covariance (D, D) ("direction") or None."""
        if self._epoch_metrics is not None:
            return self._epoch_metrics
        eps = self.config.weight_epsilon
        books = (self.inlier_codebook, self.outlier_codebook)
        if self.config.weighting == "coordinate":
            metrics = tuple(1.0 / (book.variances() + eps) for book in books)
        elif self.config.weighting == "direction":
            metrics = tuple(book.covariance() for book in books)
        else:
            metrics = (None, None)
        if self._freeze_metrics:
            self._epoch_metrics = metrics
        return metrics
