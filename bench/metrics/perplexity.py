"""Codebook usage on the clean inlier test split.

``perplexity[_<codebook>]``: ``exp(entropy)`` of code usage, from the model's own
``codebook_perplexity(images)`` (VQ models only; a float, or a dict by codebook name for models
with several codebooks). Equal to the number of codes used when usage is uniform.
"""

from __future__ import annotations

import torch


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
