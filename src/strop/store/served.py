"""What a model name means here: the weights the engine loads and, for a tuned model, the run
that produced it. One resolver for the server, the CLI, evaluation and reports.

- The server resolves within the caller's organisation: base model names, and `ft:` names
  (final or checkpoint) of succeeded, undeleted jobs (`store_resolver`).
- The local administrator (`strop chat`, `strop eval`, `strop report`, `strop models export`)
  sees every organisation's `ft:` names and may also name folders on this machine: adapter and
  model folders (`local_resolver`), and job output folders (`locate`).

The types are the engine's own (strop.serving.resolver), so both sides share one definition."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sqlalchemy.orm import Session

from strop.serving.resolver import ModelNotFoundError, ServedModel, resolve_local, served_folder
from strop.store.jobs import tuned_model, tuned_model_any_organization

EVALUATION_FILE = "evaluation.json"
MANIFEST_FILE = "manifest.json"


def resolve_served_model(session: Session, name: str, organization_id: str | None) -> ServedModel:
    """Base models resolve to themselves; ft: names (final or checkpoint) only within their
    organisation (any organisation when `organization_id` is None: the local administrator),
    while their job has succeeded and the model is not deleted. Raises ModelNotFoundError
    otherwise, with one answer for "absent" and "not yours" so that other organisations' model
    names do not leak."""
    if name.startswith("ft:"):
        if organization_id is None:
            row = tuned_model_any_organization(session, name)
            reason = (f"no fine-tuned model named '{name}' in this strop's database (deleted, "
                      "failed, or another installation)")
        else:
            row, reason = tuned_model(session, name, organization_id), None
        if row is None:
            raise ModelNotFoundError(name, reason)
        return served_folder(Path(row.path), base=row.base_model, job_id=row.job_id)
    from strop.models import ModelError, resolve

    try:
        resolve(name)
    except ModelError as exc:
        raise ModelNotFoundError(name, str(exc)) from None
    return ServedModel(base=name, adapter_dir=None)


def store_resolver(store) -> Callable[[str, str | None], ServedModel]:
    """The resolver the server's engine is given: `(name, organization_id) -> ServedModel`."""

    def resolve(name: str, organization_id: str | None) -> ServedModel:
        if organization_id is None and name.startswith("ft:"):
            raise ModelNotFoundError(name)  # a request without an organisation sees no ft: model
        with store.read() as session:
            return resolve_served_model(session, name, organization_id)

    return resolve


def local_resolver(settings) -> Callable[[str, str | None], ServedModel]:
    """The local administrator's resolver: ft: names of every organisation from the
    `settings`' database (opened only when an ft: name is asked for), adapter and model
    folders, and base model names."""

    def resolve(name: str, organization_id: str | None = None) -> ServedModel:
        if not name.startswith("ft:"):
            return resolve_local(name)
        from strop.store.db import Store

        store = Store(settings.database_url)
        try:
            with store.read() as session:
                return resolve_served_model(session, name, None)
        finally:
            store.close()

    return resolve


@dataclass
class TunedModelPaths:
    """A tuned model's files. A job output folder holds `adapter/`, `manifest.json`,
    `results.csv` and, once evaluated, `evaluation.json`."""

    name: str  # as the user gave it
    model_dir: Path  # the adapter or full model folder
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


def locate(name: str, settings) -> TunedModelPaths:
    """The files of the tuned model `name`: an ft: name (any organisation, in the `settings`'
    database), a job output folder, or an adapter or model folder. Raises ModelNotFoundError
    naming what was tried."""
    if name.startswith("ft:"):
        served = local_resolver(settings)(name)
        folder = served.adapter_dir or Path(served.base)
        return TunedModelPaths(name, folder, _job_dir_of(folder), served.job_id)
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise ModelNotFoundError(name, f"'{name}' is neither an ft: model name nor a folder")
    if (folder / "adapter").is_dir() and (folder / MANIFEST_FILE).is_file():
        return TunedModelPaths(name, folder / "adapter", folder)
    return TunedModelPaths(name, folder, _job_dir_of(folder))
