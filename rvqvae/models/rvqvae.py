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
- warm-up [``warmup_epochs=2``, at least 1; 2 chosen by the rule of the ``rvqvae-ablation``
  preset over 1] and first split [``first_split="majority"``]: the
  two-codebook objective has two stable solutions, the right one and the inverted one (the
  outlier codebook fits the inliers), and which one training reaches is set by the first split.
  "majority": during warm-up the inlier codebook alone quantises every latent (one codebook, a
  model of the whole set, i.e. of its majority since eps < 0.5); at the end of warm-up the
  round(eps * n) examples that the ``orientation`` rule ranks highest are the first outlier set,
  and the outlier codebook is re-initialised from their latents (``outlier_init``). "nearest" (the
  earlier rule): during warm-up every latent uses its nearest codeword over both codebooks
  (ties -> inlier codebook) and the first split is by ``split_score`` like any later one; its
  codebooks end warm-up alike, so the first split is near chance and can lock in inverted.
- ``orientation`` ["recon", chosen by the stated rule of the ``rvqvae-orientation`` preset
  over "spread", the default until then; see ``results/rvqvae-orientation``] (with
  "majority"): the rule that decides which side of the first split is the outlier side, each
  with what it assumes about the data:
  "spread": the round(eps * n) examples whose flattened encoder output (D x h x w) is farthest
  from the coordinate-wise median, each coordinate scaled by its median absolute deviation
  (:func:`rvqvae.models.split_rules.median_distance`). Assumes the outliers are the *spread*
  group: it inverts where they are the tighter cluster (fmnist+mnist, noise at eps = 0.4: with
  concentrated contamination the median and MAD are no longer inlier statistics).
  "recon": the worst-reconstructed examples after warm-up (the ITLM idea, trimmed VQ-VAE's
  criterion). Assumes the outliers are harder to fit; fails where they are easier.
  "inlier_distance": the examples farthest from the inlier codebook (mean weighted distance,
  see ``split_score``). Assumes the outliers lie far from the majority's codewords.
  "mass": starts from the "spread" split, lets every example go freely to the codebook that
  gives its latents the higher likelihood (each codebook a Gaussian mixture at its codewords
  with the residual variance of its side: weighted distance + log-determinant, since the
  distance alone favours the diffuse codebook), repeats until stable, and calls the side that
  serves the majority the inlier side (:func:`rvqvae.models.split_rules.mass_oriented_scores`);
  the same check runs at every later split, and an outlier codebook that serves the majority
  is swapped (the split re-oriented, both codebooks re-seeded, ``orientation_swaps`` in the
  history) once per fit: groups that the mixture cannot separate would otherwise flip the
  split back and forth every epoch (seen on synthetic images). Assumes only that inliers are
  the majority and that a two-codebook mixture separates the two groups.
- ``outlier_init`` ["kmeans++"] (with "majority"): the outlier codebook's codewords are
  k-means++ seeds (:func:`rvqvae.models.split_rules.kmeans_plus_plus`) of the first outlier
  set's latents (at most 8192 rows, a random subset), and, with ``reinit_inlier_codebook``
  [True], the inlier codebook's are those of the first inlier set's latents; "random": random
  rows of them; "keep": both codebooks left as warm-up left them.
- split [``split_score="distance_gap"``]: per example, the mean over its latent positions of
  (min distance to the inlier codebook - min distance to the outlier codebook);
  "outlier_fraction": the fraction of its latents whose nearest codeword over both codebooks is
  an outlier codeword; one-sided scores (the inlier codebook alone): "inlier_distance", the
  mean min distance to the inlier codebook, and "recon", the reconstruction MSE through it
  (trimmed VQ-VAE's criterion). After each epoch from the end of warm-up on, the round(eps * n)
  highest scores are the outlier set of the next epoch (see :mod:`rvqvae.models.outlier_split`);
  inliers are then quantised with the inlier codebook only, outliers with the outlier one only.
- hysteresis [``split_momentum=0.7``, in [0, 1)]: with m > 0 the split ranks by
  ``m * previous + (1 - m) * ranks`` (ranks of this epoch's scores scaled to [0, 1],
  :func:`rvqvae.models.split_rules.smoothed_ranks`; the first split's ranks start it), so one
  epoch cannot flip the split wholesale; the count round(eps * n) is unchanged.
- eps: ``config.contamination`` if set, else ``fit(contamination=...)`` (unless
  ``contamination_source="estimate"`` ["given"], which ignores it), else estimated by
  ``estimate`` ["otsu"] from the split scores each epoch (capped at half the set).
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
from rvqvae.models.outlier_split import split_by_score, split_quality, top_scores_mask
from rvqvae.models.split_rules import (
    kmeans_plus_plus,
    likelihood_gap,
    mass_oriented_scores,
    median_distance,
    sample_rows,
    smoothed_ranks,
)
from rvqvae.models.vq_tensors import check_images, to_rows
from rvqvae.models.vqvae import VQVAE, VQVAEConfig


@dataclass(frozen=True)
class RVQVAEConfig(VQVAEConfig):
    """:class:`VQVAEConfig` (``codebook_size`` = inlier codebook size) plus the RVQ options."""

    outlier_codebook_size: int = 32
    weighting: str = "coordinate"  # "coordinate" | "direction" | "none"
    weight_epsilon: float = 1e-4
    weight_update: str = "step"  # "step" | "epoch"
    warmup_epochs: int = 2  # picked by the rvqvae-ablation preset's stated rule
    split_score: str = "distance_gap"  # | "outlier_fraction" | "inlier_distance" | "recon"
    first_split: str = "majority"  # "majority" | "nearest"
    orientation: str = "recon"  # | "spread" | "inlier_distance" | "mass" (rvqvae-orientation)
    outlier_init: str = "kmeans++"  # "kmeans++" | "random" | "keep" (first_split="majority")
    reinit_inlier_codebook: bool = True  # first_split="majority": from the inlier side too
    split_momentum: float = 0.7  # in [0, 1): weight of the previous epochs' ranks
    contamination: float | None = None  # fixed eps; None -> fit's contamination, else estimate
    contamination_source: str = "given"  # "given": fit's contamination | "estimate": ignore it
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
        "split_score": ("distance_gap", "outlier_fraction", "inlier_distance", "recon"),
        "first_split": ("majority", "nearest"),
        "contamination_source": ("given", "estimate"),
        "orientation": ("spread", "recon", "inlier_distance", "mass"),
        "outlier_init": ("kmeans++", "random", "keep"),
        "estimate": ("otsu",),
    }

    def __init__(self, config: Any = None, **overrides: Any):
        super().__init__(config, **overrides)
        if self.config.warmup_epochs < 1:
            raise UserError("rvqvae warmup_epochs must be >= 1: the first split needs a trained "
                            f"encoder, got {self.config.warmup_epochs}")
        if not 0 <= self.config.split_momentum < 1:
            raise UserError("rvqvae split_momentum must be in [0, 1), got "
                            f"{self.config.split_momentum}")
        self.outlier_set: torch.Tensor | None = None  # bool (n,) after the first split
        self._contamination: float | None = None
        self._true_flags: torch.Tensor | None = None
        self._epoch_distances: tuple[Any, Any] | None = None
        self._freeze_distances = False  # weight_update="epoch": keep the first weights of an epoch
        self._ranks: torch.Tensor | None = None  # split_momentum: smoothed ranks so far
        self._swapped = False  # orientation="mass": a later split was re-oriented once

    # -- public ---------------------------------------------------------------------------
    def split_scores(self, images: torch.Tensor, kind: str | None = None) -> torch.Tensor:
        """The per-example score the split ranks by (``kind``, default ``config.split_score``);
        higher = outlier."""
        kind = kind or self.config.split_score
        images = check_images(images)
        if kind == "recon":
            return self.per_example_recon(images)
        out = []
        with torch.no_grad():
            for batch in images.split(self.config.inference_batch_size):
                latents = to_rows(self.encoder(batch.to(self.device)))
                _, d_in = self.codebook_search(latents, "inlier")
                if kind == "inlier_distance":
                    per_latent = d_in
                else:
                    _, d_out = self.codebook_search(latents, "outlier")
                    per_latent = (d_out < d_in).float() if kind == "outlier_fraction" \
                        else d_in - d_out
                out.append(per_latent.view(batch.shape[0], -1).mean(1).cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def codebook_search(
        self, latents: torch.Tensor, which: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Nearest codeword of ``which`` ("inlier" or "outlier") codebook under the configured
        weighted distance: ``(indices into that codebook, distances)``."""
        book = self.inlier_codebook if which == "inlier" else self.outlier_codebook
        distance = self.distance_parameters()[0 if which == "inlier" else 1]
        codewords = book.weight.detach()
        backend = self.config.quantize_backend
        if self.config.weighting == "direction":
            return quantize.nearest_directional(latents, codewords, distance,
                                                eps=self.config.weight_epsilon, backend=backend)
        return quantize.nearest(latents, codewords, distance, backend=backend)

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
        self._contamination = None if self.config.contamination_source == "estimate" \
            else contamination
        self._true_flags = outlier_flags
        self._epoch_distances = None
        self._freeze_distances = False
        self._ranks = None
        self._swapped = False

    def _start_epoch(self, epoch: int, images: torch.Tensor, generator: torch.Generator):
        # With weight_update="epoch" the weights are frozen at their first use in the epoch: not
        # here, because on epoch 0 the codebooks are initialised from data only after this hook.
        self._epoch_distances = None
        self._freeze_distances = self.config.weight_update == "epoch"
        return torch.arange(images.shape[0]), {}

    def _assign_codes(
        self, latents: torch.Tensor, example_ids: torch.Tensor | None
    ) -> torch.Tensor:
        inlier_codes, d_in = self.codebook_search(latents, "inlier")
        if example_ids is None:
            return inlier_codes
        outlier_codes, d_out = self.codebook_search(latents, "outlier")
        if self.outlier_set is None:  # warm-up
            if self.config.first_split == "majority":
                return inlier_codes
            use_outlier = d_out < d_in  # "nearest": nearest over both codebooks
        else:
            per_example = self.outlier_set[example_ids].to(latents.device)
            use_outlier = per_example.repeat_interleave(latents.shape[0] // example_ids.shape[0])
        return torch.where(use_outlier, outlier_codes + self.inlier_codebook.size, inlier_codes)

    def _end_epoch(self, epoch: int, images: torch.Tensor, generator: torch.Generator
                   ) -> dict[str, Any]:
        self._epoch_distances = None  # the split (and inference) use the codebooks as they are now
        self._freeze_distances = False
        if epoch + 1 < self.config.warmup_epochs:
            return {}
        if self.outlier_set is None and self.config.first_split == "majority":
            return self._first_split(images, generator)
        return self._resplit(images, generator)

    def _prior_examples(self, n: int) -> torch.Tensor:
        if self.outlier_set is None:
            return torch.arange(n)
        return (~self.outlier_set).nonzero().flatten()

    # -- internals ------------------------------------------------------------------------
    def _resplit(self, images: torch.Tensor, generator: torch.Generator) -> dict[str, Any]:
        if self.config.orientation == "mass" and not self._swapped \
                and self._outlier_codebook_serves_the_majority(images):
            # re-orient from the current split; a swap only when the mass rule's split shares
            # less than half of the current one (examples near a tie make the check noisy)
            scores = self._first_split_scores(images, generator, start=self.outlier_set)
            count = int(self.outlier_set.sum())
            shared = int((top_scores_mask(scores, count) & self.outlier_set).sum())
            if 2 * shared < count:
                self._ranks = None  # the smoothed ranks hold the inverted orientation
                self._swapped = True
                return {**self._first_split(images, generator, scores=scores),
                        "orientation_swaps": 1}
        return self._split_on(self.split_scores(images))

    @torch.no_grad()
    def _outlier_codebook_serves_the_majority(self, images: torch.Tensor) -> bool:
        """The mass rule's check: a free assignment of every example to the codebook that gives
        its latents the higher likelihood puts more than half on the outlier codebook."""
        books = (self.inlier_codebook.weight.detach(), self.outlier_codebook.weight.detach())
        gap = likelihood_gap(self._latent_grids(images), self.outlier_set.to(self.device), books,
                             eps=self.config.weight_epsilon)
        return int((gap > 0).sum()) * 2 > gap.shape[0]

    @torch.no_grad()
    def _first_split(self, images: torch.Tensor, generator: torch.Generator, *,
                     scores: torch.Tensor | None = None) -> dict[str, Any]:
        """first_split="majority": the first outlier set by the ``orientation`` rule (from the
        inlier codebook, the only one used during warm-up; or ``scores`` given); the codebooks
        are initialised from the latents of their sides."""
        if scores is None:
            scores = self._first_split_scores(images, generator, start=None)
        record = self._split_on(scores)
        if self.config.outlier_init == "keep":
            return record
        pick = kmeans_plus_plus if self.config.outlier_init == "kmeans++" else sample_rows
        sides = [(self.outlier_codebook, self.outlier_set)]
        if self.config.reinit_inlier_codebook:
            sides.append((self.inlier_codebook, ~self.outlier_set))
        for book, members in sides:
            if members.any():
                latents = to_rows(self._latent_grids(images[members]))
                book.reset_to(pick(latents, book.size, generator))
        return record

    def _first_split_scores(self, images: torch.Tensor, generator: torch.Generator,
                            start: torch.Tensor | None) -> torch.Tensor:
        orientation = self.config.orientation
        if orientation in ("recon", "inlier_distance"):
            return self.split_scores(images, orientation)
        grids = self._latent_grids(images)
        scores = median_distance(grids).cpu()
        if orientation == "spread":
            return scores
        if start is None:
            start = split_by_score(scores, contamination=self._eps_for_split(),
                                   estimate=self.config.estimate)
        sizes = (self.inlier_codebook.size, self.outlier_codebook.size)
        return mass_oriented_scores(grids, start.to(grids.device), sizes, generator,
                                    eps=self.config.weight_epsilon).cpu()

    @torch.no_grad()
    def _latent_grids(self, images: torch.Tensor) -> torch.Tensor:
        """Encoder outputs N x D x h x w, on the model's device."""
        return torch.cat([self.encoder(batch.to(self.device))
                          for batch in images.split(self.config.inference_batch_size)])

    def _split_on(self, scores: torch.Tensor) -> dict[str, Any]:
        """The next outlier set: the top round(eps * n) of ``scores`` (smoothed over epochs by
        ``split_momentum``; the count of an estimated eps comes from the raw scores)."""
        self.outlier_set = split_by_score(scores, contamination=self._eps_for_split(),
                                          estimate=self.config.estimate)
        if self.config.split_momentum > 0:
            self._ranks = smoothed_ranks(scores, self._ranks, self.config.split_momentum)
            scores = self._ranks
            self.outlier_set = top_scores_mask(scores, int(self.outlier_set.sum()))
        count = int(self.outlier_set.sum())
        return {"split_outliers": count,
                "split_fraction": count / max(1, scores.shape[0]),
                **split_quality(self.outlier_set, self._true_flags, scores)}

    def _eps_for_split(self) -> float | None:
        """eps of the next split: the config's, else fit's (None: estimate from the scores)."""
        if self.config.contamination is not None:
            return self.config.contamination
        return self._contamination

    def distance_parameters(self) -> tuple[Any, Any]:
        """What each codebook's distance is computed with, (inlier, outlier): coordinate weights
        ``1 / (var + eps)`` (D,) for ``weighting="coordinate"``, the covariance (D, D) for
        ``"direction"``, None for plain distances."""
        if self._epoch_distances is not None:
            return self._epoch_distances
        eps = self.config.weight_epsilon
        books = (self.inlier_codebook, self.outlier_codebook)
        if self.config.weighting == "coordinate":
            parameters = tuple(1.0 / (book.variances() + eps) for book in books)
        elif self.config.weighting == "direction":
            parameters = tuple(book.covariance() for book in books)
        else:
            parameters = (None, None)
        if self._freeze_distances:
            self._epoch_distances = parameters
        return parameters
