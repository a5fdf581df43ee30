"""The VQ models' input checks and the layout of their latent grids as rows of vectors."""

from __future__ import annotations

import torch

from rvqvae.errors import UserError
from rvqvae.models import base
from rvqvae.models.conv_blocks import DOWNSAMPLING


def check_images(images: torch.Tensor) -> torch.Tensor:
    """``images`` as contiguous float32 N x C x H x W in [0, 1] with H, W divisible by 4, on the
    CPU (models move one batch at a time to their device)."""
    if not torch.is_tensor(images) or images.ndim != 4:
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise UserError(f"images must be a tensor N x C x H x W, got {shape}")
    if images.shape[2] % DOWNSAMPLING or images.shape[3] % DOWNSAMPLING:
        raise UserError(
            f"image height and width must be multiples of {DOWNSAMPLING} for the VQ models, "
            f"got {images.shape[2]}x{images.shape[3]}; pad or resize the images"
        )
    images = base.require_finite(images.to("cpu", torch.float32).contiguous())
    if images.numel() and (images.min() < 0 or images.max() > 1):
        raise UserError("images must be floats in [0, 1]; divide uint8 pixels by 255")
    return images


def check_flags(flags: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """``flags`` as a bool tensor of length ``n`` (or None)."""
    if flags is None:
        return None
    flags = torch.as_tensor(flags).bool().flatten()
    if flags.shape[0] != n:
        raise UserError(f"outlier_flags has {flags.shape[0]} entries but there are {n} images")
    return flags


def to_rows(grid: torch.Tensor) -> torch.Tensor:
    """N x D x h x w -> (N*h*w) x D, example-major then raster order."""
    return grid.permute(0, 2, 3, 1).reshape(-1, grid.shape[1])


def to_grid(rows: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """The inverse of :func:`to_rows` for a grid of ``shape`` (N x D x h x w)."""
    n, d, h, w = shape
    return rows.view(n, h, w, d).permute(0, 3, 1, 2)
