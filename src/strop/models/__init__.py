"""Base-model registry: names to weights, tokenizer and chat template."""

from strop.models.embedded import DEFAULT_MODEL, EMBEDDED_MODELS
from strop.models.registry import LoadedModel, ModelError, ModelSource, available, describe, load, resolve

__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDED_MODELS",
    "LoadedModel",
    "ModelError",
    "ModelSource",
    "available",
    "describe",
    "load",
    "resolve",
]
