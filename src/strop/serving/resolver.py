"""How the engine learns what a model name means: the control plane answers, the engine loads.

The engine never reads the job store. It is given a resolver, a callable that turns the `model`
of a request (a base model name, an `ft:` name or a checkpoint name) into the base weights to
load and, for tuned models, the PEFT adapter folder to put on top of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class ModelNotFoundError(LookupError):
    """The requested model does not exist or is not visible to the caller's organization."""

    def __init__(self, name: str, reason: str | None = None):
        self.name = name
        super().__init__(reason or f"The model '{name}' does not exist or you do not have access to it.")

    @property
    def message(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class ServedModel:
    """What to load for one model name.

    `base` is anything `strop.models.load` accepts (an embedded model name, a model folder, a hub
    id). `adapter_dir` is a folder with adapter_config.json and adapter_model.safetensors (and,
    ideally, the tokenizer and chat template used in training), or None to serve the base as is.
    `job_id` names the fine-tuning job that made an ft: model; the engine ignores it, reports
    follow it to the audit trail.
    """

    base: str
    adapter_dir: Path | None = None
    job_id: str | None = None


def served_folder(folder: Path, base: str | None = None, job_id: str | None = None) -> ServedModel:
    """What to load for a tuned model's folder: a full fine-tuned model is a base model of its
    own; anything else is an adapter over `base` (default: the base the adapter names)."""
    from strop.models.adapters import adapter_base, is_adapter_folder

    folder = Path(folder)
    if (folder / "config.json").is_file() and not is_adapter_folder(folder):
        return ServedModel(base=str(folder), job_id=job_id)
    return ServedModel(base=base or adapter_base(folder), adapter_dir=folder, job_id=job_id)


class ModelResolver(Protocol):
    def __call__(self, name: str, organization: str | None) -> ServedModel:
        """Map a request's model name to weights; raise ModelNotFoundError when there is none."""


def resolve_local(name: str, organization: str | None = None) -> ServedModel:
    """A resolver without a control plane: base model names and adapter or model folders.

    Tests and benchmarks use it alone; the CLI's resolver (strop.store.served.local_resolver)
    adds `ft:` names from the store, the server's (store_resolver) honours organisations.
    """
    from strop.models import ModelError, resolve
    from strop.models.adapters import is_adapter_folder

    try:
        if is_adapter_folder(name):
            return served_folder(Path(name).expanduser().resolve())
        resolve(name)
    except ModelError as exc:
        raise ModelNotFoundError(name, str(exc)) from None
    return ServedModel(base=name)
