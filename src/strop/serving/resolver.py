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
    """

    base: str
    adapter_dir: Path | None = None


class ModelResolver(Protocol):
    def __call__(self, name: str, organization: str | None) -> ServedModel:
        """Map a request's model name to weights; raise ModelNotFoundError when there is none."""


def resolve_local(name: str, organization: str | None = None) -> ServedModel:
    """A resolver without a control plane: base model names and adapter or model folders.

    Used by `strop chat` and tests; the server uses the store's resolver so that `ft:` names
    and organizations are honoured.
    """
    from strop.models import ModelError, resolve
    from strop.models.adapters import adapter_base, is_adapter_folder

    try:
        if is_adapter_folder(name):
            path = Path(name).expanduser().resolve()
            return ServedModel(base=adapter_base(path), adapter_dir=path)
        resolve(name)
    except ModelError as exc:
        raise ModelNotFoundError(name, str(exc)) from None
    return ServedModel(base=name)
