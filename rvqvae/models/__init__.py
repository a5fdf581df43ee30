"""Registered generative models: ``create_model(name, **options)`` builds any of them.

Importing this package registers the built-in models.
"""

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
