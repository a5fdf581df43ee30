"""VQ-VAE (van den Oord, Vinyals, Kavukcuoglu 2017) with a gated PixelCNN prior over its codes.

Training minimises, per batch,

    recon(x, D(z_q)) + ||sg[z_e] - e||^2 + beta * ||z_e - sg[e]||^2,    z_q = z_e + sg[e - z_e]

(recon is binary cross-entropy on the decoder's logits by default; codebook loss, then the
commitment term whose gradient goes to the encoder; MSE means over elements), or, with
``codebook_update="ema"``, recon + beta * commitment with EMA codebook updates. Codewords
unused since the last restart are re-initialised from random encoder outputs every
``restart_every`` steps or after every epoch (``dead_code_restart``; never after the final
step, so the fitted model is the one that was trained). After the autoencoder, a
:class:`GatedPixelCNN` prior is fitted on the training codes; ``sample`` draws index grids from
it and decodes them.

The training loop is shared by RVQ-VAE, trimmed and oracle VQ-VAE through the hooks at the end
of the class (which codebooks exist, which examples an epoch trains on, which codeword each
latent may use, what happens after an epoch, which examples the prior sees).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from rvqvae import quantize
from rvqvae.errors import NonFiniteError, UserError
from rvqvae.models import base
from rvqvae.models.base import EpochCallback, GenerativeModel, register_model
from rvqvae.models.codebook import Codebook, perplexity
from rvqvae.models.conv_blocks import DOWNSAMPLING, Decoder, Encoder
from rvqvae.models.prior import PRIOR_SCHEDULES, GatedPixelCNN
from rvqvae.models.split_rules import sample_rows
from rvqvae.models.vq_tensors import check_flags, check_images, to_grid, to_rows

_POOL_PER_BATCH = 32  # encoder outputs kept per batch as candidates for dead-code restart
_INIT_IMAGES = 1024  # images encoded to initialise codebooks from data


@dataclass(frozen=True)
class VQVAEConfig:
    """Hyper-parameters of :class:`VQVAE` (defaults sized for 28x28 images on a CPU)."""

    in_channels: int = 1  # reset by fit() to the training images' channel count
    hidden_channels: int = 32
    residual_channels: int = 16
    residual_blocks: int = 1
    latent_dim: int = 32  # D
    codebook_size: int = 128  # K
    codebook_init: str = "data"  # "data": random encoder outputs at init | "uniform": U(-1/K, 1/K)
    beta: float = 0.25  # weight of the commitment term
    # "bce": cross-entropy on the decoder's logits | "mse": MSE on its sigmoid output. Not "mse"
    # by default: its gradient vanishes once the logits saturate, and on small MNIST runs the
    # decoder then dies to a black image (3 of 5 seeds of the ci preset at epsilon 0).
    recon_loss: str = "bce"
    codebook_update: str = "loss"  # "loss": codebook loss | "ema": EMA updates (no codebook loss)
    ema_decay: float = 0.99
    ema_epsilon: float = 1e-5  # Laplace smoothing of EMA counts
    dead_code_restart: bool = True
    restart_every: int = 10  # optimizer steps between dead-code restarts; 0 = after each epoch
    epochs: int = 10
    batch_size: int = 32
    lr: float = 2e-3
    prior_epochs: int = 5  # 0 leaves the prior at its random initialisation
    prior_channels: int = 32
    prior_layers: int = 3  # 3 layers of kernel 5 see every earlier position of a 7x7 grid
    prior_kernel: int = 5
    prior_batch_size: int = 64
    prior_lr: float = 3e-3
    prior_schedule: str = "constant"  # "cosine": anneal prior_lr to 0 over the prior's steps
    # "kept": a prior epoch is one pass over the codes it is fitted on (fewer steps when a model
    # drops examples); "full": as many codes as the training set holds (equal steps)
    prior_epoch_length: str = "kept"
    inference_batch_size: int = 512
    quantize_backend: str = "auto"  # backend of rvqvae.quantize.nearest


@register_model("vqvae", description="VQ-VAE (van den Oord 2017) with a gated PixelCNN prior")
class VQVAE(GenerativeModel):
    """Conv encoder/decoder, one codebook, straight-through quantisation, PixelCNN prior."""

    Config = VQVAEConfig
    score_names = ("recon", "prior_nll")
    default_score = "recon"
    option_choices: ClassVar[dict[str, tuple[str, ...]]] = {
        "codebook_init": ("data", "uniform"),
        "recon_loss": ("bce", "mse"),
        "codebook_update": ("loss", "ema"),
        "prior_schedule": PRIOR_SCHEDULES,
        "prior_epoch_length": ("kept", "full"),
    }

    def __init__(self, config: Any = None, **overrides: Any):
        super().__init__(config, **overrides)
        for name, allowed in self.option_choices.items():
            value = getattr(self.config, name)
            if value not in allowed:
                raise UserError(
                    f"{name}={value!r} is not supported; choose one of {', '.join(allowed)}")
        self.register_buffer("image_shape", torch.tensor([self.config.in_channels, 28, 28]))
        self.prior_history: list[dict[str, Any]] = []
        self.prior_seconds: float | None = None  # wall seconds of the last fit's prior training
        self._build(seed=0)

    # -- training -------------------------------------------------------------------------
    def fit(
        self, images: torch.Tensor, *, seed: int = 0, epochs: int | None = None,
        contamination: float | None = None, outlier_flags: torch.Tensor | None = None,
        negatives: torch.Tensor | None = None, on_epoch: EpochCallback | None = None,
    ) -> list[dict[str, Any]]:
        """Re-initialise from ``seed``, train the autoencoder, then the prior; return the history.

        Each history dict has ``epoch``, ``loss``, ``recon_loss``, ``codebook_loss``,
        ``commitment_loss``, ``perplexity`` (of the epoch's code usage), ``restarted_codes``,
        ``steps`` (optimizer steps) and whatever the subclass hooks add. ``negatives`` is
        ignored. The prior's own per-epoch history is kept in ``self.prior_history``.
        """
        images = check_images(images)
        base.require_images(images)
        flags = check_flags(outlier_flags, images.shape[0])
        n_epochs = self.config.epochs if epochs is None else epochs
        generator = torch.Generator().manual_seed(seed)
        self._build(seed, images.shape[1:])
        self._begin_fit(images, contamination=contamination, outlier_flags=flags,
                        generator=generator)
        params = [p for name, p in self.named_parameters()
                  if p.requires_grad and not name.startswith("prior.")]
        optimizer = torch.optim.Adam(params, lr=self.config.lr)
        history = []
        self.train()
        for epoch in range(n_epochs):
            examples, info = self._start_epoch(epoch, images, generator)
            if epoch == 0 and self.config.codebook_init == "data":
                self._initialise_codebooks_from(images[examples], generator)
            record: dict[str, Any] = {"epoch": epoch}
            record.update(self._train_epoch(images, examples, optimizer, generator,
                                            restart=epoch < n_epochs - 1, epoch=epoch))
            record.update(info)
            record.update(self._end_epoch(epoch, images, generator))
            history.append(record)
            if on_epoch is not None:
                on_epoch(record)
        prior_start = time.perf_counter()
        prior_examples = self._prior_examples(images.shape[0])
        codes = self.encode_codes(images[prior_examples])
        self.prior_history = self.prior.fit(
            codes, epochs=self.config.prior_epochs, batch_size=self.config.prior_batch_size,
            lr=self.config.prior_lr, schedule=self.config.prior_schedule, generator=generator,
            epoch_size=images.shape[0] if self.config.prior_epoch_length == "full" else None,
        )
        self.prior_seconds = time.perf_counter() - prior_start
        self.eval()
        return history

    def training_losses(
        self, images: torch.Tensor, example_ids: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The loss terms of one batch, with autograd graph: ``loss`` = ``recon_loss`` +
        ``codebook_loss`` + beta * ``commitment_loss``; also ``codes`` (the chosen indices into
        the concatenated codebooks) and ``latents`` (encoder outputs, one row per position).

        ``example_ids`` are the batch's positions in the training set (used by subclasses that
        route examples to codebooks); default ``0..B-1``.
        """
        if example_ids is None:
            example_ids = torch.arange(images.shape[0])
        images = images.to(self.device)
        encoded = self.encoder(images)
        latents = to_rows(encoded)
        codes = self._assign_codes(latents.detach(), example_ids)
        # index_select, not table[codes]: the backward of advanced indexing is an accumulating
        # index_put_ whose multi-threaded CPU kernel sums in varying order (not reproducible).
        codewords = self._code_table().index_select(0, codes)
        if self.config.codebook_update == "ema":
            codebook_loss = latents.new_zeros(())
        else:
            codebook_loss = F.mse_loss(codewords, latents.detach())
        commitment_loss = F.mse_loss(latents, codewords.detach())
        quantized = latents + (codewords - latents).detach()  # straight-through estimator
        logits = self.decoder(to_grid(quantized, encoded.shape))
        if self.config.recon_loss == "bce":
            recon_loss = F.binary_cross_entropy_with_logits(logits, images)
        else:
            recon_loss = F.mse_loss(torch.sigmoid(logits), images)
        loss = recon_loss + codebook_loss + self.config.beta * commitment_loss
        return {"loss": loss, "recon_loss": recon_loss, "codebook_loss": codebook_loss,
                "commitment_loss": commitment_loss, "codes": codes, "latents": latents}

    # -- inference ------------------------------------------------------------------------
    @torch.no_grad()
    def encode_codes(self, images: torch.Tensor) -> torch.Tensor:
        """Index grids ``N x h x w`` (on the CPU) into the generation codebook (the one the prior
        models)."""
        images = check_images(images)
        grids = []
        for batch in images.split(self.config.inference_batch_size):
            encoded = self.encoder(batch.to(self.device))
            codes = self._assign_codes(to_rows(encoded), None)
            grids.append(codes.view(encoded.shape[0], *encoded.shape[2:]).cpu())
        return torch.cat(grids) if grids else torch.zeros(0, *self.grid_shape, dtype=torch.long)

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (on the CPU) decoded from index grids into the generation codebook."""
        table = self._codebooks()[0].weight
        out = []
        for batch in codes.split(self.config.inference_batch_size):
            latents = table[batch.to(table.device)].permute(0, 3, 1, 2)
            out.append(torch.sigmoid(self.decoder(latents)).cpu())
        return torch.cat(out) if out else torch.zeros(0, *self._fitted_image_shape())

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode_codes(self.encode_codes(images))

    @torch.no_grad()
    def per_example_recon(self, images: torch.Tensor) -> torch.Tensor:
        """Mean squared reconstruction error of every image (N,): trimmed VQ-VAE's trimming
        criterion and RVQ-VAE's first split score."""
        images = check_images(images)
        return (self.reconstruct(images) - images).square().flatten(1).mean(1)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """Index grids drawn from the prior, decoded; the same ``seed`` gives the same images."""
        n = base.check_sample_count(n)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            codes = self.prior.sample(n, self.grid_shape, generator=generator,
                                      batch_size=self.config.inference_batch_size)
        return self.decode_codes(codes)

    def outlier_scores(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``recon``: per-image MSE of its reconstruction; ``prior_nll``: its codes' NLL (nats)."""
        images = check_images(images)
        codes = self.encode_codes(images)
        recon = self.decode_codes(codes)
        return {
            "recon": (recon - images).square().flatten(1).mean(1),
            "prior_nll": self.prior.nll(codes),
        }

    def codebook_perplexity(self, images: torch.Tensor) -> float:
        """``exp(entropy)`` of how often each generation codeword is used on ``images``."""
        codes = self.encode_codes(images)
        return perplexity(torch.bincount(codes.flatten(), minlength=self._codebooks()[0].size))

    @property
    def grid_shape(self) -> tuple[int, int]:
        """The latent index grid's (height, width) for the images the model was fitted on."""
        height, width = self._fitted_image_shape()[1:]
        return height // DOWNSAMPLING, width // DOWNSAMPLING

    def _fitted_image_shape(self) -> tuple[int, ...]:
        return tuple(int(size) for size in self.image_shape)  # (C, H, W) of the training images

    # -- hooks for subclasses -------------------------------------------------------------
    def _build_codebooks(self) -> None:
        """Create the codebook modules (called inside the seeded RNG scope of ``_build``)."""
        self.codebook = self._new_codebook(self.config.codebook_size)

    def _codebooks(self) -> list[Codebook]:
        """All codebooks, generation codebook first; code indices address their concatenation."""
        return [self.codebook]

    def _begin_fit(self, images: torch.Tensor, *, contamination: float | None,
                   outlier_flags: torch.Tensor | None, generator: torch.Generator) -> None:
        """Called once before the first epoch."""

    def _start_epoch(
        self, epoch: int, images: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Called before each epoch: indices of the examples it trains on, and history fields."""
        return torch.arange(images.shape[0]), {}

    def _epoch_order(self, examples: torch.Tensor, n_images: int, generator: torch.Generator
                     ) -> torch.Tensor:
        """The epoch's training examples in batch order: one shuffled pass over ``examples``."""
        return examples[torch.randperm(examples.shape[0], generator=generator)]

    def _assign_codes(
        self, latents: torch.Tensor, example_ids: torch.Tensor | None
    ) -> torch.Tensor:
        """Code index (into the concatenated codebooks) of each latent row (M x D, detached).

        ``example_ids`` (B,) are the training-set positions of the batch, rows are example-major;
        ``None`` means inference, where indices must address the generation codebook.
        """
        indices, _ = quantize.nearest(latents, self.codebook.weight.detach(),
                                      backend=self.config.quantize_backend)
        return indices

    def _end_epoch(self, epoch: int, images: torch.Tensor, generator: torch.Generator
                   ) -> dict[str, Any]:
        """Called after each epoch; returns extra history fields."""
        return {}

    def _prior_examples(self, n: int) -> torch.Tensor:
        """Indices of the training examples whose codes train the prior."""
        return torch.arange(n)

    # -- internals ------------------------------------------------------------------------
    def _build(self, seed: int, image_shape: torch.Size | None = None) -> None:
        """(Re)create all modules with weights drawn from ``seed`` (global RNG untouched)."""
        if image_shape is not None:
            if image_shape[0] != self.config.in_channels:
                self.config = dataclasses.replace(self.config, in_channels=int(image_shape[0]))
            self.image_shape = torch.tensor(list(image_shape))
        cfg = self.config
        sizes = (cfg.hidden_channels, cfg.residual_channels, cfg.residual_blocks, cfg.latent_dim)
        device = self.device  # weights are drawn on the CPU (same on every device), then moved
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.encoder = Encoder(cfg.in_channels, *sizes)
            self.decoder = Decoder(cfg.in_channels, *sizes)
            self._build_codebooks()
            self.prior = GatedPixelCNN(cfg.codebook_size, channels=cfg.prior_channels,
                                       layers=cfg.prior_layers, kernel=cfg.prior_kernel)
        self.to(device)

    def _new_codebook(self, size: int) -> Codebook:
        cfg = self.config
        return Codebook(size, cfg.latent_dim, ema=cfg.codebook_update == "ema",
                        decay=cfg.ema_decay, epsilon=cfg.ema_epsilon)

    def _code_table(self) -> torch.Tensor:
        books = self._codebooks()
        return books[0].weight if len(books) == 1 else torch.cat([b.weight for b in books])

    @torch.no_grad()
    def _initialise_codebooks_from(self, images: torch.Tensor, generator: torch.Generator) -> None:
        picks = torch.randperm(images.shape[0], generator=generator)[:_INIT_IMAGES]
        pool = to_rows(self.encoder(images[picks].to(self.device)))
        for book in self._codebooks():
            book.reset_to(sample_rows(pool, book.size, generator))

    def _train_epoch(self, images: torch.Tensor, examples: torch.Tensor, optimizer,
                     generator: torch.Generator, *, restart: bool, epoch: int = 0
                     ) -> dict[str, Any]:
        cfg = self.config
        order = self._epoch_order(examples, images.shape[0], generator)
        batches = order.split(cfg.batch_size)
        table_size = sum(b.size for b in self._codebooks())
        epoch_usage = torch.zeros(table_size, dtype=torch.long, device=self.device)
        window_usage, pool_latents, pool_codes = epoch_usage.clone(), [], []
        totals: dict[str, float] = defaultdict(float)
        restarted = 0
        for step, batch_ids in enumerate(batches):
            try:
                terms = self.training_losses(images[batch_ids], batch_ids)
            except NonFiniteError:  # the quantizer refusing NaN latents: training diverged
                base.check_loss(math.nan, epoch=epoch, batch=step)
            base.check_loss(terms["loss"].item(), epoch=epoch, batch=step)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            latents, codes = terms["latents"].detach(), terms["codes"]
            if cfg.codebook_update == "ema":
                self._ema_update(latents, codes)
            counts = torch.bincount(codes, minlength=table_size)
            epoch_usage += counts
            window_usage += counts
            keep = torch.randperm(codes.shape[0], generator=generator)[:_POOL_PER_BATCH]
            keep = keep.to(codes.device)
            pool_latents.append(latents[keep])
            pool_codes.append(codes[keep])
            for name in ("loss", "recon_loss", "codebook_loss", "commitment_loss"):
                totals[name] += terms[name].item() * batch_ids.shape[0]
            last = step == len(batches) - 1
            window_done = (step + 1) % cfg.restart_every == 0 if cfg.restart_every else last
            if cfg.dead_code_restart and window_done and (restart or not last):
                restarted += self._restart_dead_codes(
                    window_usage, torch.cat(pool_latents), torch.cat(pool_codes), generator)
                window_usage.zero_()
                pool_latents, pool_codes = [], []
        record = {name: total / max(1, order.shape[0]) for name, total in totals.items()}
        record["perplexity"] = perplexity(epoch_usage)
        record["restarted_codes"] = restarted
        record["steps"] = len(batches)
        return record

    def _ema_update(self, latents: torch.Tensor, codes: torch.Tensor) -> None:
        offset = 0
        for book in self._codebooks():
            mine = (codes >= offset) & (codes < offset + book.size)
            if mine.any():
                book.ema_update(latents[mine], codes[mine] - offset)
            offset += book.size

    def _restart_dead_codes(self, usage: torch.Tensor, pool: torch.Tensor, pool_codes: torch.Tensor,
                            generator: torch.Generator) -> int:
        """Restart each codebook's unused codewords from encoder outputs it quantised (else any)."""
        restarted, offset = 0, 0
        for book in self._codebooks():
            mine = (pool_codes >= offset) & (pool_codes < offset + book.size)
            candidates = pool[mine] if mine.any() else pool
            restarted += book.restart(usage[offset:offset + book.size] == 0, candidates, generator)
            offset += book.size
        return restarted
