"""A gated PixelCNN prior over a grid of codebook indices (van den Oord et al. 2016).

The VQ models sample by drawing a latent index grid (e.g. 7x7) from this prior and decoding it.
The network follows "Conditional Image Generation with PixelCNN Decoders" without the class
conditioning: an embedding of the K indices feeds a **vertical stack** (sees the rows above) and
a **horizontal stack** (sees the pixels to the left in the current row, plus the vertical stack),
each layer a gated unit ``tanh(a) * sigmoid(b)``. The first layer is masked type A (a position
never sees its own index), the others type B. Logits at grid position p depend only on the
indices at positions before p in raster order; with ``layers * (kernel // 2) >= side - 1`` they
depend on *all* of them.

>>> prior = GatedPixelCNN(num_codes=128)
>>> history = prior.fit(codes, epochs=5, generator=torch.Generator().manual_seed(0))
>>> grid = prior.sample(16, (7, 7), generator=torch.Generator().manual_seed(1))
>>> prior.nll(grid)                                   # (16,) nats per grid
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rvqvae.errors import UserError
from rvqvae.models.base import check_loss, shuffled_passes

PRIOR_SCHEDULES = ("constant", "cosine")  # the prior's learning-rate schedules


class GatedPixelCNN(nn.Module):
    """Autoregressive model ``p(c) = prod_p p(c_p | c_<p)`` of ``N x h x w`` index grids."""

    def __init__(self, num_codes: int, *, channels: int = 32, layers: int = 3, kernel: int = 5):
        super().__init__()
        if kernel < 3 or kernel % 2 == 0:
            raise ValueError(f"prior kernel must be odd and >= 3, got {kernel}")
        if layers < 1:
            raise ValueError(f"prior layers must be >= 1, got {layers}")
        self.num_codes = num_codes
        self.embedding = nn.Embedding(num_codes, channels)
        self.layers = nn.ModuleList(
            GatedMaskedConv(channels, kernel, first=(i == 0)) for i in range(layers)
        )
        self.head = nn.Sequential(
            nn.Conv2d(channels, 2 * channels, 1), nn.ReLU(), nn.Conv2d(2 * channels, num_codes, 1)
        )

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Logits ``N x K x h x w``; position p's logits depend only on indices before p."""
        x = self.embedding(codes).permute(0, 3, 1, 2)
        vertical, horizontal = x, x
        for layer in self.layers:
            vertical, horizontal = layer(vertical, horizontal)
        return self.head(horizontal)

    def _row_context(self, codes: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's vertical-to-horizontal input at the last row of ``codes`` (``N x h' x
        w``): what the horizontal stack of that row receives from the rows above. It depends on
        rows ``< h'`` only, so one pass serves every position of the row."""
        vertical = self.embedding(codes).permute(0, 3, 1, 2)
        context = []
        for layer in self.layers:
            vertical, to_horizontal = layer.vertical_stack(vertical)
            context.append(to_horizontal[:, :, -1:, :])
        return context

    def _row_logits(self, row_codes: torch.Tensor, context: list[torch.Tensor]) -> torch.Tensor:
        """Logits ``N x K x 1 x w`` of one row from its own codes (``N x 1 x w``) and the
        context of the rows above (:meth:`_row_context`): what :meth:`forward` gives that row."""
        horizontal = self.embedding(row_codes).permute(0, 3, 1, 2)
        for layer, to_horizontal in zip(self.layers, context, strict=True):
            horizontal = layer.horizontal_stack(horizontal, to_horizontal)
        return self.head(horizontal)

    def nll(self, codes: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
        """Negative log-likelihood of each grid in nats (sum over its positions), shape ``(N,)``,
        on the CPU."""
        out = []
        device = self.embedding.weight.device
        with torch.no_grad():
            for start in range(0, codes.shape[0], batch_size):
                chunk = codes[start:start + batch_size].to(device)
                loss = F.cross_entropy(self(chunk), chunk, reduction="none")
                out.append(loss.flatten(1).sum(1).cpu())
        return torch.cat(out) if out else torch.zeros(0)

    def sample(
        self, n: int, shape: tuple[int, int], *, generator: torch.Generator | None = None,
        batch_size: int = 1024,
    ) -> torch.Tensor:
        """``n`` index grids of ``shape`` (on the CPU) drawn position by position in raster order.

        Reproducible: the same ``generator`` state gives the same grids (on CPU). The draws use
        the CPU ``generator`` on the probabilities moved to the CPU, on any device.
        """
        height, width = shape
        grids = []
        device = self.embedding.weight.device
        with torch.no_grad():
            for start in range(0, n, batch_size):
                count = min(batch_size, n - start)
                codes = torch.zeros(count, height, width, dtype=torch.long, device=device)
                for row in range(height):
                    # the rows above fix the vertical stack once per row; each position then
                    # reruns only the row's own horizontal stack (same logits as self(codes))
                    context = self._row_context(codes[:, :row + 1])
                    for col in range(width):
                        logits = self._row_logits(codes[:, row:row + 1], context)[:, :, 0, col]
                        probs = F.softmax(logits, dim=1).cpu()
                        draws = torch.multinomial(probs, 1, generator=generator)[:, 0]
                        codes[:, row, col] = draws.to(device)
                grids.append(codes.cpu())
        return torch.cat(grids) if grids else torch.zeros(0, height, width, dtype=torch.long)

    def fit(
        self, codes: torch.Tensor, *, epochs: int = 10, batch_size: int = 64, lr: float = 3e-3,
        schedule: str = "constant", generator: torch.Generator | None = None,
        epoch_size: int | None = None,
    ) -> list[dict[str, Any]]:
        """Train by cross-entropy on ``codes`` (``N x h x w`` int64) with Adam.

        ``schedule``: ``"constant"`` keeps ``lr``; ``"cosine"`` anneals it step by step from
        ``lr`` towards 0 over the whole run (``CosineAnnealingLR``). Batches are drawn in an
        order fixed by ``generator``. ``epoch_size``: grids per epoch, drawn as shuffled passes
        over ``codes`` cut at that number (so a model that keeps fewer codes can take as many
        steps as one that keeps all); None: one shuffled pass. Returns one dict per epoch with
        ``epoch``, ``loss`` (mean NLL per grid, nats) and ``lr`` (the rate of the epoch's last
        step).
        """
        if schedule not in PRIOR_SCHEDULES:
            raise UserError(f"prior schedule {schedule!r} is not supported; choose one of "
                            f"{', '.join(PRIOR_SCHEDULES)}")
        optimizer = torch.optim.Adam(self.parameters(), lr=lr)
        per_epoch = codes.shape[0] if epoch_size is None else epoch_size
        total_steps = epochs * -(-per_epoch // batch_size)
        annealing = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, total_steps))
                     if schedule == "cosine" else None)
        device = self.embedding.weight.device
        history = []
        was_training = self.training
        self.train()
        for epoch in range(epochs):
            order = shuffled_passes(codes.shape[0], per_epoch, generator)
            total = 0.0
            for start in range(0, len(order), batch_size):
                batch = codes[order[start:start + batch_size]].to(device)
                loss = F.cross_entropy(self(batch), batch)
                check_loss(loss.item(), epoch=epoch, batch=start // batch_size,
                           what="prior training loss")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                step_lr = optimizer.param_groups[0]["lr"]
                optimizer.step()
                if annealing is not None:
                    annealing.step()
                total += loss.item() * batch.numel()
            # cross_entropy averages over positions; total / N is the mean NLL of one grid
            history.append({"epoch": epoch, "loss": total / max(1, len(order)),
                            "lr": step_lr if len(order) else lr})
        self.train(was_training)
        return history


class GatedMaskedConv(nn.Module):
    """One gated layer: vertical stack (rows above) and horizontal stack (left in the row).

    The vertical convolution has a ``(k//2 + 1) x k`` kernel padded so output row i sees input
    rows ``i - k//2 .. i``; in the first layer the last kernel row is masked, so the vertical
    stack at row i depends on image rows ``< i`` only, in every layer. The horizontal convolution
    ``1 x (k//2 + 1)`` sees columns ``j - k//2 .. j``; in the first layer (type A) its last
    column is masked and there is no residual connection, so position p never sees itself.
    """

    def __init__(self, channels: int, kernel: int, *, first: bool):
        super().__init__()
        half = kernel // 2
        self.first = first
        self.vertical = nn.Conv2d(channels, 2 * channels, (half + 1, kernel), padding=(half, half))
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal = nn.Conv2d(channels, 2 * channels, (1, half + 1), padding=(0, half))
        self.horizontal_out = nn.Conv2d(channels, channels, 1)
        vertical_mask = torch.ones_like(self.vertical.weight)
        horizontal_mask = torch.ones_like(self.horizontal.weight)
        if first:
            vertical_mask[:, :, -1] = 0
            horizontal_mask[:, :, :, -1] = 0
        self.register_buffer("vertical_mask", vertical_mask, persistent=False)
        self.register_buffer("horizontal_mask", horizontal_mask, persistent=False)

    def forward(
        self, vertical_in: torch.Tensor, horizontal_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        vertical_out, to_horizontal = self.vertical_stack(vertical_in)
        return vertical_out, self.horizontal_stack(horizontal_in, to_horizontal)

    def vertical_stack(self, vertical_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The vertical output and what the horizontal stack receives from it, per position."""
        height = vertical_in.shape[-2]
        vertical = F.conv2d(
            vertical_in, self.vertical.weight * self.vertical_mask, self.vertical.bias,
            padding=self.vertical.padding,
        )[:, :, :height, :]
        # In the first layer the vertical features at row i already exclude row i; in later
        # layers they are built from such features, so feeding them to row i leaks nothing.
        return _gate(vertical), self.vertical_to_horizontal(vertical)

    def horizontal_stack(
        self, horizontal_in: torch.Tensor, to_horizontal: torch.Tensor
    ) -> torch.Tensor:
        width = horizontal_in.shape[-1]
        horizontal = F.conv2d(
            horizontal_in, self.horizontal.weight * self.horizontal_mask, self.horizontal.bias,
            padding=self.horizontal.padding,
        )[:, :, :, :width]
        horizontal_out = self.horizontal_out(_gate(horizontal + to_horizontal))
        if not self.first:
            horizontal_out = horizontal_out + horizontal_in
        return horizontal_out


def _gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)
