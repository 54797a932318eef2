"""What a run leaves on disk: inference folders, checkpoints, the results CSV, the manifest.

    output_dir/adapter/            PEFT adapter (LoRA) or full model folder, + tokenizer/template
    output_dir/checkpoints/step-N/ same layout, plus trainer-state.pt for resuming
    output_dir/results.csv         step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy
    output_dir/manifest.json       provenance: base model hash, data hashes, hyperparameters, ...
    output_dir/merged/             LoRA merged into the base (only when asked)
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

from strop.models.adapters import write_adapter_metadata

RESULTS_COLUMNS = ["step", "train_loss", "train_accuracy", "valid_loss",
                   "valid_mean_token_accuracy"]
STATE_FILE = "trainer-state.pt"


def save_inference_folder(model, tokenizer, folder: Path, base_model: str) -> Path:
    """A folder `strop.models.load` (and peft/vLLM for adapters) can load for inference."""
    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    if hasattr(model, "peft_config"):
        write_adapter_metadata(partial, base_model)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)  # a crash never leaves a half-written folder under the real name
    return folder


def write_results_csv(path: Path, history: list[dict]) -> Path:
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(RESULTS_COLUMNS)
        for row in history:
            writer.writerow([row["step"], _cell(row.get("train_loss")),
                             _cell(row.get("train_mean_token_accuracy")),
                             _cell(row.get("valid_loss")),
                             _cell(row.get("valid_mean_token_accuracy"))])
    return Path(path)


def _cell(value) -> str:
    return "" if value is None else f"{value:.6g}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_hash(folder: str | Path) -> str | None:
    """sha256 over the base model's safetensors files, in name order."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def library_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("strop", "torch", "transformers", "peft", "accelerate"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return versions


def write_manifest(path: Path, manifest: dict) -> Path:
    Path(path).write_text(json.dumps(manifest, indent=2, default=str))
    return Path(path)
