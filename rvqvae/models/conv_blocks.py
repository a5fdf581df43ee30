"""The convolutional encoder and decoder shared by the VQ models (VQ-VAE, RVQ-VAE, trimmed, oracle).

The encoder maps an image ``N x C x H x W`` to a latent grid ``N x D x H/4 x W/4`` (28x28 -> 7x7)
with two stride-2 convolutions and residual blocks, as in van den Oord et al. (2017), scaled down
so that a few epochs on a few thousand images run in seconds on a CPU. The decoder mirrors it and
returns **logits**: ``torch.sigmoid(logits)`` is the reconstruction in [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

DOWNSAMPLING = 4
"""Each spatial side of the latent grid is the image side divided by this."""


class Encoder(nn.Module):
    """Image ``N x C x H x W`` -> latent grid ``N x latent_dim x H/4 x W/4``."""

    def __init__(
        self, in_channels: int, hidden_channels: int, residual_channels: int,
        residual_blocks: int, latent_dim: int,
    ):
        super().__init__()
        half = max(1, hidden_channels // 2)
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, half, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(half, hidden_channels, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden_channels, hidden_channels, 3, padding=1),
            *[ResidualBlock(hidden_channels, residual_channels) for _ in range(residual_blocks)],
            nn.ReLU(),
            nn.Conv2d(hidden_channels, latent_dim, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


class Decoder(nn.Module):
    """Latent grid ``N x latent_dim x h x w`` -> image logits ``N x C x 4h x 4w``."""

    def __init__(
        self, out_channels: int, hidden_channels: int, residual_channels: int,
        residual_blocks: int, latent_dim: int,
    ):
        super().__init__()
        half = max(1, hidden_channels // 2)
        self.layers = nn.Sequential(
            nn.Conv2d(latent_dim, hidden_channels, 3, padding=1),
            *[ResidualBlock(hidden_channels, residual_channels) for _ in range(residual_blocks)],
            nn.ReLU(),
            nn.ConvTranspose2d(hidden_channels, half, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(half, out_channels, 4, stride=2, padding=1),
        )

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.layers(latents)


class ResidualBlock(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(x))))`` (the VQ-VAE paper's residual block)."""

    def __init__(self, channels: int, hidden_channels: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, hidden_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden_channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)
