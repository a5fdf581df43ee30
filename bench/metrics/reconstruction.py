"""Reconstruction error and codebook usage on the clean inlier test split.

- ``recon_mse_clean_test``: mean over images and pixels of ``(model.reconstruct(x) - x) ** 2``,
  computed in batches without gradients (images in [0, 1]).
- ``perplexity[_<codebook>]``: ``exp(entropy)`` of code usage, from the model's own
  ``codebook_perplexity(images)`` (VQ models only; a float, or a dict by codebook name for
  models with several codebooks). Equal to the number of codes used when usage is uniform.
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


def codebook_perplexities(model, images: torch.Tensor) -> dict[str, float]:
    """``{"perplexity": p}`` or ``{"perplexity_<codebook>": p, ...}``; empty for non-VQ models."""
    compute = getattr(model, "codebook_perplexity", None)
    if compute is None:
        return {}
    with torch.no_grad():
        result = compute(images)
    if isinstance(result, dict):
        return {f"perplexity_{name}": float(value) for name, value in result.items()}
    return {"perplexity": float(result)}
