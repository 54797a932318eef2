"""Serving settings, with defaults that fit the embedded model on a small CPU machine."""

from __future__ import annotations

import os
from dataclasses import dataclass

DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class EngineSettings:
    # Bytes of LoRA weights kept in memory across all loaded adapters; least recently used
    # adapters are evicted beyond it. 1 GiB holds ~50 rank-16 adapters of the 135M model.
    adapter_memory_bytes: int = 1 << 30
    # Precision of the base weights while serving (adapters stay float32; see docs/serving.md).
    dtype: str = "bfloat16"
    max_base_models: int = 2

    def __post_init__(self) -> None:
        if self.adapter_memory_bytes < 1:
            raise ValueError(f"adapter_memory_bytes must be positive, got {self.adapter_memory_bytes}")
        if self.dtype not in DTYPES:
            raise ValueError(f"serving dtype must be one of {', '.join(DTYPES)}, got '{self.dtype}'")
        if self.max_base_models < 1:
            raise ValueError(f"max_base_models must be at least 1, got {self.max_base_models}")

    @classmethod
    def from_env(cls) -> "EngineSettings":
        """STROP_ADAPTER_MEMORY_BYTES, STROP_SERVE_DTYPE, STROP_MAX_BASE_MODELS override defaults."""
        defaults = cls()
        values = {}
        for field_name, variable, convert in (
            ("adapter_memory_bytes", "STROP_ADAPTER_MEMORY_BYTES", int),
            ("dtype", "STROP_SERVE_DTYPE", str),
            ("max_base_models", "STROP_MAX_BASE_MODELS", int),
        ):
            raw = os.environ.get(variable)
            if raw is None or raw == "":
                continue
            try:
                values[field_name] = convert(raw)
            except ValueError:
                raise ValueError(f"{variable}={raw!r} is not a valid {convert.__name__}") from None
        return cls(**{**defaults.__dict__, **values})
