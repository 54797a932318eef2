"""Tuned model folders: a PEFT adapter over its base model, with the tokenizer used in training.

A LoRA run writes a standard PEFT folder (adapter_config.json + adapter_model.safetensors) plus
the tokenizer files and chat template, and `strop-adapter.json` naming the base model the way
strop named it (an embedded name stays valid after STROP_HOME moves; the absolute path PEFT
records in adapter_config.json does not). Other tools read the standard files and ignore ours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

ADAPTER_CONFIG = "adapter_config.json"
STROP_ADAPTER = "strop-adapter.json"


def is_adapter_folder(name: str | Path | None) -> bool:
    if not name:
        return False
    path = Path(name).expanduser()
    return path.is_dir() and (path / ADAPTER_CONFIG).is_file()


def adapter_base(folder: str | Path) -> str:
    """The base model an adapter folder applies to, as a name `strop.models.load` accepts."""
    folder = Path(folder).expanduser()
    own = folder / STROP_ADAPTER
    if own.is_file():
        return json.loads(own.read_text())["base_model"]
    config = json.loads((folder / ADAPTER_CONFIG).read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        from strop.models.registry import ModelError

        raise ModelError(f"{folder}: {ADAPTER_CONFIG} does not name its base model")
    return base


def write_adapter_metadata(folder: Path, base_model: str) -> None:
    (Path(folder) / STROP_ADAPTER).write_text(json.dumps({"base_model": base_model}, indent=2))


def load_adapter(folder: str | Path, dtype: str = "float32", trainable: bool = False,
                 progress: Callable[[str], None] | None = None, base: str | None = None):
    """The base model with the adapter applied (a PeftModel) and the adapter's tokenizer.
    `base` overrides the base model the folder names (e.g. the one the store recorded)."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    from strop.models.registry import LoadedModel, load

    folder = Path(folder).expanduser().resolve()
    loaded_base = load(base or adapter_base(folder), dtype=dtype, progress=progress)
    model = PeftModel.from_pretrained(loaded_base.model, folder, is_trainable=trainable)
    if not trainable:
        model.eval()
    tokenizer = loaded_base.tokenizer
    if (folder / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(folder)
    return LoadedModel(loaded_base.source, model, tokenizer, folder)


def save_merged(adapter_dir: str | Path, destination: str | Path, base: str | None = None,
                dtype: str = "float32") -> Path:
    """Fold a LoRA adapter into a copy of its base and save that as a plain Hugging Face model
    folder (safetensors, tokenizer and chat template included) that needs neither strop nor
    PEFT to load. The caller decides what happens to an existing `destination`."""
    loaded = load_adapter(adapter_dir, dtype=dtype, base=base)
    merged = loaded.model.merge_and_unload()
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(destination, safe_serialization=True)
    loaded.tokenizer.save_pretrained(destination)
    return destination
