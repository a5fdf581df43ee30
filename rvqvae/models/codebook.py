"""A VQ codebook: K codewords of dimension D, learned by gradient or by EMA, with dead-code restart.

Nearest-codeword search is not done here: the models call :func:`rvqvae.quantize.nearest` on
``codebook.weight`` and gather codewords by index, so gradients flow through the gather only.
"""

from __future__ import annotations

import torch
from torch import nn

from rvqvae.models.split_rules import sample_rows


class Codebook(nn.Module):
    """``weight`` (K x D) plus the exponential-moving-average statistics used when ``ema=True``.

    With ``ema=False`` the weight is a trainable parameter (learned through the codebook loss).
    With ``ema=True`` it is a parameter with ``requires_grad=False`` updated by
    :meth:`ema_update` (van den Oord et al. 2017, appendix A.1, with Laplace smoothing of counts).
    """

    def __init__(self, size: int, dim: int, *, ema: bool = False, decay: float = 0.99,
                 epsilon: float = 1e-5):
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"codebook size and dim must be >= 1, got {size} x {dim}")
        self.ema = ema
        self.decay = decay
        self.epsilon = epsilon
        weight = torch.empty(size, dim).uniform_(-1.0 / size, 1.0 / size)
        self.weight = nn.Parameter(weight, requires_grad=not ema)
        # EMA statistics start as "each codeword has seen itself once", so a code that is never
        # used keeps its value instead of collapsing to 0 / eps.
        self.register_buffer("ema_count", torch.ones(size))
        self.register_buffer("ema_sum", weight.clone())

    @property
    def size(self) -> int:
        return self.weight.shape[0]

    @torch.no_grad()
    def reset_to(self, vectors: torch.Tensor) -> None:
        """Set the codewords to ``vectors`` (K x D) and restart the EMA statistics from them."""
        self.weight.copy_(vectors)
        self.ema_sum.copy_(vectors)
        self.ema_count.fill_(1.0)

    @torch.no_grad()
    def ema_update(self, vectors: torch.Tensor, indices: torch.Tensor) -> None:
        """One EMA step: move each codeword towards the mean of the ``vectors`` assigned to it."""
        counts = torch.bincount(indices, minlength=self.size).to(vectors.dtype)
        sums = torch.zeros_like(self.ema_sum).index_add_(0, indices, vectors)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + self.epsilon) / (total + self.size * self.epsilon) * total
        self.weight.copy_(self.ema_sum / smoothed[:, None])

    @torch.no_grad()
    def restart(self, dead: torch.Tensor, pool: torch.Tensor, generator: torch.Generator) -> int:
        """Re-initialise the codewords where ``dead`` (bool K) from random rows of ``pool``.

        Returns how many codewords were restarted (0 when ``pool`` is empty).
        """
        count = int(dead.sum())
        if count == 0 or pool.shape[0] == 0:
            return 0
        picks = sample_rows(pool, count, generator)
        self.weight[dead] = picks
        self.ema_sum[dead] = picks
        self.ema_count[dead] = 1.0
        return count

    def variances(self) -> torch.Tensor:
        """Per-coordinate variance of the codewords (D,), detached (for RVQ's weighted distance)."""
        return self.weight.detach().var(dim=0, unbiased=False)

    def covariance(self) -> torch.Tensor:
        """Covariance of the codewords (D x D), detached (for RVQ's directional distance)."""
        centered = self.weight.detach() - self.weight.detach().mean(dim=0)
        return centered.T @ centered / self.size


def perplexity(counts: torch.Tensor) -> float:
    """``exp(entropy)`` of code usage ``counts`` (K,): 1 = one code used, K = all used equally.

    0 when ``counts`` are all zero."""
    counts = counts.double()
    if counts.sum() == 0:
        return 0.0
    probs = counts / counts.sum()
    probs = probs[probs > 0]
    return float(torch.exp(-(probs * probs.log()).sum()))
