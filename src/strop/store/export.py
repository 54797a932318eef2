"""A tuned model's weights as files the user keeps: the adapter as trained, or merged into
its base model as a plain Hugging Face folder that needs no strop and no PEFT to load."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path
from typing import Iterator

from strop.models.adapters import is_adapter_folder, save_merged


def _refuse_non_empty(destination: Path) -> None:
    if destination.exists() and any(destination.iterdir()):
        raise FileExistsError(f"{destination} exists and is not empty; choose a new folder")


def export_adapter(adapter_dir: Path, destination: Path) -> Path:
    """Copy the adapter (or full fine-tuned model) folder, tokenizer and template included."""
    _refuse_non_empty(destination)
    shutil.copytree(adapter_dir, destination, dirs_exist_ok=True)
    return destination


def export_merged(base_model: str, adapter_dir: Path, destination: Path,
                  dtype: str = "float32") -> Path:
    """Fold the adapter into the base weights and save a standalone model folder."""
    if not is_adapter_folder(adapter_dir):  # full fine-tuning already produced standalone weights
        return export_adapter(adapter_dir, destination)
    _refuse_non_empty(destination)
    return save_merged(adapter_dir, destination, base=base_model, dtype=dtype)


class _Chunks:
    """A write-only file that hands out what was written, so tar output can be streamed."""

    def __init__(self):
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def stream_tar_gz(folder: Path, root_name: str) -> Iterator[bytes]:
    """A .tar.gz of `folder` (entries under `root_name/`), produced piece by piece."""
    sink = _Chunks()
    with tarfile.open(fileobj=sink, mode="w|gz") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.add(path, arcname=f"{root_name}/{path.relative_to(folder)}")
                if chunk := sink.take():
                    yield chunk
    if chunk := sink.take():
        yield chunk


def export_tuned_model(store, name: str, destination: Path, merged: bool = False) -> Path:
    """Write the weights of ft: model `name` (any organisation: an administrator's call)."""
    from strop.store.served import resolve_served_model

    with store.read() as session:
        served = resolve_served_model(session, name, None)
    folder = served.adapter_dir or Path(served.base)
    if not folder.is_dir():
        raise FileNotFoundError(f"the weights of '{name}' are missing from {folder}")
    if merged:
        return export_merged(served.base, folder, destination)
    return export_adapter(folder, destination)
