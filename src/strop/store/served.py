"""What the inference engine asks the store: which weights does a model name mean here?

The types are the engine's own (strop.serving.resolver), so both sides share one definition."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from sqlalchemy.orm import Session

from strop.serving.resolver import ModelNotFoundError, ServedModel
from strop.store.jobs import tuned_model


def resolve_served_model(session: Session, name: str, organization_id: str) -> ServedModel:
    """Base models resolve to themselves; ft: names (final or checkpoint) only within their
    organisation, while their job has succeeded and the model is not deleted. Raises
    ModelNotFoundError otherwise, with one answer for "absent" and "not yours" so that other
    organisations' model names do not leak."""
    if name.startswith("ft:"):
        row = tuned_model(session, name, organization_id)
        if row is None:
            raise ModelNotFoundError(name)
        return ServedModel(base=row.base_model, adapter_dir=Path(row.path))
    from strop.models import ModelError, resolve

    try:
        resolve(name)
    except ModelError as exc:
        raise ModelNotFoundError(name, str(exc)) from None
    return ServedModel(base=name, adapter_dir=None)


def store_resolver(store) -> Callable[[str, str | None], ServedModel]:
    """The resolver the engine is given: `(name, organization_id) -> ServedModel`."""

    def resolve(name: str, organization_id: str | None) -> ServedModel:
        if organization_id is None and name.startswith("ft:"):
            raise ModelNotFoundError(name)
        with store.read() as session:
            return resolve_served_model(session, name, organization_id or "")

    return resolve
