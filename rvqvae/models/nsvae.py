"""``nsvae``: the negative-sampling VAE (Csiszarik, Benko, Varga 2019, arXiv 1910.02760).

Negative sampling adds a second prior ``N(m * 1, I)`` for *negative* samples and minimises,
per pair of a positive ``x`` and a negative ``x_neg``, ``-ELBO(x) + KL(q(z | x_neg) ||
N(m * 1, I))``. Network, likelihood, optimiser and outlier scores are the plain VAE's
(:mod:`rvqvae.models.vae`); defaults follow the paper's grayscale settings and the authors'
code (m = 8).

Negatives (``negatives=``):
- ``"adversarial"`` (default, fully unsupervised): the model's own samples ``G(z_p)``,
  ``z_p ~ N(0, I)``. Each batch is one encoder step, then one generator (decoder) step:
  ``enc_loss = KL(q(z|x)||p) + alpha_gen KL(q(z|sg(G(z_p)))||p_neg) + beta rec(x, G(z~))``,
  ``gen_loss = alpha_gen KL(q(z|G(z_p))||p) + beta rec(x, G(z~))`` with ``z~ ~ q(z|x)`` drawn
  once per batch and the generator's KL taken under the just-updated encoder.
- ``"auxiliary"``: images passed as ``fit(..., negatives=...)``, weight ``alpha_neg``.
- ``"noise"``: the batch plus isotropic Gaussian noise (``noise_std``, 0.25 in the paper),
  clipped to [0, 1], weight ``alpha_neg``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch

from rvqvae.errors import UserError
from rvqvae.models.base import register_model
from rvqvae.models.gaussian import kl_to_shifted_normal, kl_to_standard_normal
from rvqvae.models.vae import VAE, VAEConfig

NEGATIVE_SOURCES = ("adversarial", "auxiliary", "noise")


@dataclasses.dataclass(frozen=True)
class NSVAEConfig(VAEConfig):
    """:class:`VAEConfig` plus the negative prior and the source of negatives."""

    negatives: str = "adversarial"  # | "auxiliary" | "noise"
    negative_prior_shift: float = 8.0  # m: the negative prior is N(m * 1, I)
    alpha_gen: float = 1.0  # weight of the generated negatives' terms (adversarial)
    alpha_neg: float = 1.0  # weight of the auxiliary / noise negatives' term
    noise_std: float = 0.25

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.negatives not in NEGATIVE_SOURCES:
            raise UserError(
                f"negatives {self.negatives!r} is unknown; use one of "
                f"{', '.join(NEGATIVE_SOURCES)} (or the model 'vae' for none)"
            )


@register_model(
    "nsvae",
    description="Negative-sampling VAE (Csiszarik et al. 2019): negatives mapped to N(m*1, I)",
)
class NSVAE(VAE):
    """VAE whose negatives (generated, auxiliary or noisy) are pushed to the prior N(m * 1, I)."""

    Config: ClassVar[type] = NSVAEConfig

    @property
    def negatives(self) -> str:
        return self.config.negatives

    # -- negatives: drawn per batch, pushed to N(m * 1, I) --------------------------------
    def _negative_batch(
        self, x: torch.Tensor, auxiliary: torch.Tensor | None, rng: torch.Generator
    ) -> torch.Tensor | None:
        """Negatives for one batch (auxiliary draws with replacement; noisy copies); None
        when negatives are generated inside the step."""
        if self.negatives == "auxiliary":
            pick = torch.randint(len(auxiliary), (len(x),), generator=rng)
            return auxiliary[pick].to(x.device)
        if self.negatives == "noise":
            noise = torch.randn(x.shape, generator=rng).to(x.device)
            return (x + self.config.noise_std * noise).clamp(0.0, 1.0)
        return None

    def _negative_terms(
        self, x: torch.Tensor, x_neg: torch.Tensor | None, rng: torch.Generator
    ) -> tuple[torch.Tensor | None, dict[str, float], dict[str, Any]]:
        """Adversarial: ``alpha_gen KL(q(z | sg(G(z_p))) || p_neg)``, keeping ``G(z_p)``'s graph
        for the generator step; auxiliary / noise: ``alpha_neg KL(q(z | x_neg) || p_neg)``."""
        cfg = self.config
        if self.negatives == "adversarial":
            z_prior = torch.randn((len(x), cfg.latent_dim), generator=rng).to(x.device)
            generated = self.decoder(z_prior)  # its graph is reused by the generator step
            neg_kl = self._negative_kl(generated.detach())
            return cfg.alpha_gen * neg_kl, {"neg_kl": neg_kl.item()}, {"generated": generated}
        neg_kl = self._negative_kl(x_neg)
        return cfg.alpha_neg * neg_kl, {"neg_kl": neg_kl.item()}, {}

    def _generator_terms(self, pending: dict[str, Any]) -> dict[str, float]:
        """Adversarial: add ``alpha_gen * KL(q(z | G(z_p)) || N(0, I))`` under the updated
        encoder, whose weights the generator step leaves untouched."""
        generated = pending.get("generated")
        if generated is None:
            return {}
        mu, logvar = self.encoder(generated)
        gen_kl = kl_to_standard_normal(mu, logvar).mean()
        params = [p for p in self.decoder.parameters() if p.requires_grad]
        grads = torch.autograd.grad(self.config.alpha_gen * gen_kl, params)
        for param, grad in zip(params, grads, strict=True):
            param.grad = grad if param.grad is None else param.grad + grad
        return {"gen_kl": gen_kl.item()}

    def _negative_kl(self, x_neg: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.encoder(x_neg)
        return kl_to_shifted_normal(mu, logvar, self.config.negative_prior_shift).mean()

    def _check_negatives(self, negatives: torch.Tensor | None) -> torch.Tensor | None:
        if self.negatives != "auxiliary":
            return None
        if negatives is None or len(negatives) == 0:
            raise UserError(
                "nsvae with negatives='auxiliary' needs negative images: pass "
                "fit(..., negatives=images) or use negatives='adversarial'"
            )
        return self._check_images(negatives, what="negative images")
