"""Closed-form pieces of Gaussian-latent VAEs: KL terms and per-image likelihoods.

Every function returns one value per image (shape ``N``): callers average over the batch.
Posteriors are diagonal Gaussians given by ``mu`` and ``logvar`` (log sigma squared), N x d.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)  # 0.9189..., the "0.919" of the authors' code


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` summed over latent dimensions; exactly 0 iff
    ``mu == 0`` and ``logvar == 0``."""
    return 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def kl_to_shifted_normal(mu: torch.Tensor, logvar: torch.Tensor, shift: float) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(shift * 1, I))``: the standard KL with ``mu - shift``.

    This is the negative prior of negative-sampling VAEs (Csiszarik et al. 2019).
    """
    return kl_to_standard_normal(mu - shift, logvar)


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A differentiable sample ``mu + sigma * eps`` with ``eps ~ N(0, I)`` drawn from ``generator``
    (on the CPU, so the draw is the same on every device)."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def reconstruction_nll(
    images: torch.Tensor, means: torch.Tensor, likelihood: str = "bernoulli"
) -> torch.Tensor:
    """Negative log-likelihood of ``images`` under the decoder's per-pixel ``means``, summed
    over pixels.

    ``"bernoulli"``: binary cross-entropy (images in [0, 1] act as soft targets).
    ``"gaussian"``: fixed unit variance, ``sum((x - mean)^2 / 2 + log sqrt(2 pi))`` as in the
    authors' code with gamma = 1.
    """
    if likelihood == "bernoulli":
        per_pixel = F.binary_cross_entropy(means, images, reduction="none")
    elif likelihood == "gaussian":
        per_pixel = 0.5 * (images - means).square() + HALF_LOG_2PI
    else:
        raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
    return per_pixel.flatten(1).sum(dim=1)
