"""Registered generative models: ``create_model(name, **options)`` builds any of them.

Importing this package registers the built-in models: ``vqvae``, ``rvqvae``,
``trimmed-vqvae``, ``oracle-vqvae``, ``nsvae`` and ``vae``.
"""

from rvqvae.models import (  # noqa: F401  (registration)
    nsvae,
    oracle,
    rvqvae,
    trimmed,
    vae,
    vqvae,
)
from rvqvae.models.base import (
    MODELS,
    GenerativeModel,
    create_model,
    default_config,
    model_name,
    register_model,
)

__all__ = [
    "MODELS", "GenerativeModel", "create_model", "default_config", "model_name",
    "register_model",
]
