"""From a model name to the folders the evaluation and the report need.

A tuned model is named by its ft: name (looked up in the store, any organisation: this is the
local administrator's view), by a job's output folder, or by its adapter folder. A job output
folder holds `adapter/`, `manifest.json`, `results.csv` and, once evaluated, `evaluation.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

EVALUATION_FILE = "evaluation.json"
MANIFEST_FILE = "manifest.json"


class LocateError(ValueError):
    """A model name that names no tuned model here; the message says what was tried."""


@dataclass
class TunedModelPaths:
    name: str  # as the user gave it
    model_dir: Path  # what strop.models.load takes (adapter or full model folder)
    job_dir: Path | None  # the run's output folder, when known
    job_id: str | None = None

    @property
    def manifest_path(self) -> Path | None:
        if self.job_dir and (self.job_dir / MANIFEST_FILE).is_file():
            return self.job_dir / MANIFEST_FILE
        return None

    def manifest(self) -> dict | None:
        path = self.manifest_path
        return json.loads(path.read_text()) if path else None

    @property
    def evaluation_path(self) -> Path:
        return (self.job_dir or self.model_dir) / EVALUATION_FILE


def _job_dir_of(folder: Path) -> Path | None:
    """The run folder above an adapter or checkpoint folder: the nearest with a manifest."""
    for candidate in (folder, *list(folder.parents)[:3]):
        if (candidate / MANIFEST_FILE).is_file():
            return candidate
    return None


def _from_store(name: str) -> tuple[Path, str]:
    from strop.settings import Settings
    from strop.store import Store
    from strop.store.jobs import tuned_model_any_organization

    store = Store(Settings.load().database)
    try:
        with store.session() as session:
            row = tuned_model_any_organization(session, name)
            if row is None:
                raise LocateError(f"no fine-tuned model named '{name}' in this strop's "
                                  "database (deleted, failed, or another installation)")
            return Path(row.path), row.job_id
    finally:
        store.close()


def locate(name: str) -> TunedModelPaths:
    if name.startswith("ft:"):
        folder, job_id = _from_store(name)
        return TunedModelPaths(name, folder, _job_dir_of(folder), job_id)
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise LocateError(f"'{name}' is neither an ft: model name nor a folder")
    if (folder / "adapter").is_dir() and (folder / MANIFEST_FILE).is_file():
        return TunedModelPaths(name, folder / "adapter", folder)
    return TunedModelPaths(name, folder, _job_dir_of(folder))
