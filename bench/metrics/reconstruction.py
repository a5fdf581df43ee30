"""Reconstruction error on the clean inlier test split.

``recon_mse_clean_test``: mean over images and pixels of ``(model.reconstruct(x) - x) ** 2``,
computed in batches without gradients (images in [0, 1]). Codebook usage is in
:mod:`bench.metrics.perplexity`.
"""

from __future__ import annotations

import torch


def reconstruction_mse(model, images: torch.Tensor, *, batch_size: int = 512) -> float:
    """Mean per-pixel squared error of ``model.reconstruct`` on ``images`` (float64 sum)."""
    if len(images) == 0:
        raise ValueError("reconstruction_mse needs at least one image")
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(torch.float32)
            recon = model.reconstruct(batch).to(torch.float32)
            if recon.shape != batch.shape:
                raise ValueError(
                    f"reconstruct returned shape {tuple(recon.shape)} for input "
                    f"{tuple(batch.shape)}"
                )
            total += float((recon - batch).double().pow(2).sum())
    return total / images.numel()
