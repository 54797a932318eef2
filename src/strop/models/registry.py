"""Resolve a model name to weights on disk and load them.

A name is one of: an embedded model (`smollm2-135m-instruct`), a local Hugging Face folder, or a
hub id (`org/name`), tried in that order. Resolution never touches the network; loading a hub id
does, and offline it fails with one sentence instead of a traceback.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from strop.models.embedded import (
    DEFAULT_MODEL,
    EMBEDDED_MODELS,
    cache_problem,
    convert,
    ensure_converted,
)

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelError(ValueError):
    """A model name that cannot be resolved or loaded; the message is meant for the user."""


@dataclass(frozen=True)
class ModelSource:
    name: str
    kind: Literal["embedded", "local", "hub"]
    location: str


@dataclass
class LoadedModel:
    source: ModelSource
    model: object  # transformers PreTrainedModel
    tokenizer: object  # transformers PreTrainedTokenizerBase
    folder: Path | None

    @property
    def context_length(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048))


def _is_model_folder(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file()


def resolve(name: str | None) -> ModelSource:
    name = name or DEFAULT_MODEL
    if name in EMBEDDED_MODELS:
        return ModelSource(name, "embedded", name)
    path = Path(name).expanduser()
    if _is_model_folder(path):
        return ModelSource(name, "local", str(path.resolve()))
    if path.exists():
        raise ModelError(
            f"'{name}' is a folder but not a Hugging Face model: it has no config.json."
        )
    if HUB_ID.match(name) and not name.startswith((".", "/", "~")):
        return ModelSource(name, "hub", name)
    known = ", ".join(sorted(EMBEDDED_MODELS))
    raise ModelError(
        f"Unknown model '{name}': not an embedded model ({known}), not a local folder with a "
        "config.json, and not a Hugging Face hub id of the form 'org/name'."
    )


def _log(progress: Callable[[str], None] | None) -> Callable[[str], None]:
    return progress or (lambda message: None)


def model_folder(source: ModelSource, progress: Callable[[str], None] | None = None) -> Path:
    """A local folder holding the model's weights, converting or downloading if needed."""
    if source.kind == "embedded":
        return ensure_converted(EMBEDDED_MODELS[source.name], _log(progress))
    if source.kind == "local":
        return Path(source.location)
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                source.location,
                allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"],
            )
        )
    except Exception as exc:  # every hub failure (offline, 404, auth) ends the same way here
        raise ModelError(
            f"Could not download '{source.name}' from the Hugging Face Hub "
            f"({type(exc).__name__}); pass a local model folder or use the embedded default "
            f"'{DEFAULT_MODEL}', which works offline."
        ) from None


def load(
    name: str | None = None,
    dtype: str = "float32",
    progress: Callable[[str], None] | None = None,
) -> LoadedModel:
    """Load model and tokenizer by name; `dtype` is a torch dtype name. A tuned model's
    adapter folder loads as its base model with the adapter applied."""
    from strop.models.adapters import is_adapter_folder, load_adapter

    if is_adapter_folder(name):
        return load_adapter(name, dtype=dtype, progress=progress)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve(name)
    folder = model_folder(source, progress)
    torch_dtype = getattr(torch, dtype)

    def read() -> LoadedModel:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        network = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype)
        network.eval()
        return LoadedModel(source, network, tokenizer, folder)

    if source.kind != "embedded":
        return read()
    try:
        return read()
    except Exception as exc:  # a damaged cache can fail in many ways; rebuild once, then give up
        embedded = EMBEDDED_MODELS[source.name]
        reason = cache_problem(folder, deep=True) or f"load failed: {exc}"
        _log(progress)(f"Cache of {source.name} unusable ({reason}); rebuilding")
        folder = convert(embedded, _log(progress))
        return read()


def describe(name: str) -> dict:
    """What `strop models list` shows, without loading weights."""
    source = resolve(name)
    info = {"name": name, "kind": source.kind, "cached": False, "parameters": None,
            "context_length": None, "dtype": None, "location": source.location}
    folder: Path | None = None
    if source.kind == "embedded":
        embedded = EMBEDDED_MODELS[name]
        folder = embedded.cache_dir()
        info["cached"] = folder.exists() and cache_problem(folder) is None
        info["location"] = str(folder if info["cached"] else embedded.gguf_path())
    elif source.kind == "local":
        folder = Path(source.location)
        info["cached"] = True
    if folder is not None and (folder / "config.json").is_file():
        config = json.loads((folder / "config.json").read_text())
        info["context_length"] = config.get("max_position_embeddings")
        info["dtype"] = config.get("dtype") or config.get("torch_dtype")
        info["parameters"] = _count_parameters(folder)
    return info


def _count_parameters(folder: Path) -> int | None:
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        with safe_open(path, framework="pt") as handle:
            for key in handle.keys():
                shape = handle.get_slice(key).get_shape()
                count = 1
                for dim in shape:
                    count *= dim
                total += count
    return total


def available() -> list[str]:
    """Embedded models plus local model folders the user registered under STROP_HOME/models."""
    from strop.settings import Settings

    names = list(EMBEDDED_MODELS)
    cache = Settings.load().models_dir
    for path in sorted(cache.iterdir()) if cache.is_dir() else ():
        if path.name not in EMBEDDED_MODELS and _is_model_folder(path):
            names.append(str(path))
    return names
