"""Load only a model's tokenizer and context length (no weights), for token counts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable


def load_tokenizer(model: str | None = None, progress: Callable[[str], None] | None = None):
    """(tokenizer, context length) of a base model name or folder; the embedded default model is
    converted once on first use, as everywhere else in strop."""
    from transformers import AutoTokenizer

    from strop.models.registry import model_folder, resolve

    folder = Path(model_folder(resolve(model), progress))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    context = config.get("max_position_embeddings") or getattr(tokenizer, "model_max_length", None)
    return tokenizer, int(context) if context and context < 10**7 else None


def count_parameters(model: str | None = None) -> int | None:
    """Parameter count of a base model from its safetensors headers, without loading weights."""
    from strop.models.registry import DEFAULT_MODEL, describe, model_folder, resolve

    name = model or DEFAULT_MODEL
    info = describe(name)
    if not info.get("parameters"):
        model_folder(resolve(name))  # converts the embedded model if it is not cached yet
        info = describe(name)
    return int(info["parameters"]) if info.get("parameters") else None
