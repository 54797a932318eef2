"""Inference: many tuned models (LoRA adapters) served over shared base models."""

from strop.serving.engine import Engine, ServingError
from strop.serving.resolver import (
    ModelNotFoundError,
    ModelResolver,
    ServedModel,
    resolve_local,
)

__all__ = [
    "Engine",
    "ModelNotFoundError",
    "ModelResolver",
    "ServedModel",
    "ServingError",
    "resolve_local",
]
