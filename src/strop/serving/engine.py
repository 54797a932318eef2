"""The inference engine: one base model in memory, many LoRA adapters over it, one generation at
a time.

Which adapter is merged into a base model's weights is global state on that model (see
strop.serving.lora). So every generation holds the engine's lock from choosing its adapter to
its last token: a request can never run through another request's adapter. On CPU this costs
no throughput, since two decodes at once would share the same memory bandwidth.

Adapters are loaded on first use and evicted least-recently-used when the bytes of the loaded
adapter weights would exceed `ServingSettings.adapter_memory_bytes`. Base models are few and
large; at most `max_base_models` stay loaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from strop.serving.decoder import join_projections, unsupported_reason
from strop.serving.generation import Completion, SamplingParams, StopCheck, render_chat, stream_chat
from strop.serving.lora import AdapterFormatError, LoraWeights, MergedLora, read_lora
from strop.serving.resolver import ModelNotFoundError, ModelResolver, ServedModel, resolve_local
from strop.settings import ServingSettings


class ServingError(Exception):
    """A request the engine cannot serve; `status` and `code` are what the HTTP layer returns."""

    def __init__(self, message: str, status: int = 400, code: str | None = None,
                 param: str | None = None, type: str = "invalid_request_error"):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.param = param
        self.type = type


@dataclass
class _Adapter:
    key: str
    folder: Path
    tokenizer: object
    weights: LoraWeights
    nbytes: int
    names: set[str] = field(default_factory=set)  # request model names that mapped here
    load_seconds: float = 0.0


@dataclass
class _Base:
    name: str
    model: object  # a transformers model
    lora: MergedLora
    tokenizer: object
    nbytes: int
    context_length: int
    adapters: OrderedDict[str, _Adapter] = field(default_factory=OrderedDict)  # LRU order


@dataclass
class Weights:
    """One model's weights in place: its base model with its adapter (if any) merged in. Only
    valid inside the engine's lock (`Engine.hold`, or one `Engine.stream`)."""

    network: object  # the base transformers model, the adapter merged into its layers
    tokenizer: object  # the adapter's own when it has one (its chat template was trained on)
    context_length: int

    def render(self, messages: list[dict]) -> list[int]:
        """The prompt's token ids, rendered with the model's chat template."""
        try:
            return render_chat(self.tokenizer, messages)
        except ValueError as exc:
            raise ServingError(str(exc), code="chat_template_missing", param="model") from None
        except Exception as exc:  # jinja raises its own errors for messages it cannot render
            raise ServingError(f"The model's chat template cannot render these messages: {exc}",
                               param="messages") from None

    def stream(self, prompt_ids: list[int], params: SamplingParams,
               should_stop: StopCheck | None = None, stats: dict | None = None) -> Iterator[str]:
        """The reply's text pieces (strop.serving.generation.stream_chat)."""
        return stream_chat(self.network, self.tokenizer, [], params, stats, should_stop,
                           prompt_ids)


def _tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _adapter_key(folder: Path) -> str:
    return "adapter_" + hashlib.sha256(str(folder).encode()).hexdigest()[:16]


class Engine:
    """Serves chat completions for base and tuned models.

    `resolve(name, organization)` maps a request's model name to a `ServedModel`; it is the only
    thing the engine knows about the control plane.
    """

    def __init__(self, resolve: ModelResolver = resolve_local,
                 settings: ServingSettings | None = None,
                 progress: Callable[[str], None] | None = None):
        self.resolve = resolve
        self.settings = settings or ServingSettings()
        self.progress = progress  # told what loading a base model is doing (the CLI prints it)
        self._lock = threading.Lock()
        self._bases: OrderedDict[str, _Base] = OrderedDict()
        # Adapters trained on one base save identical tokenizer files; they share one object
        # (a 49k-token tokenizer is several MB, as much as a small adapter).
        self._tokenizers: weakref.WeakValueDictionary = weakref.WeakValueDictionary()

    # -- public API ------------------------------------------------------------------------

    def stream(self, model: str, messages: list[dict], params: SamplingParams,
               organization: str | None = None, should_stop: StopCheck | None = None,
               stats: dict | None = None) -> Iterator[str]:
        """Yield the reply's text pieces; `stats` gets prompt_tokens, completion_tokens and
        finish_reason. The engine lock is held while the generator runs: consume it promptly
        and close it (or exhaust it) from the thread that started it."""
        served = self._resolve(model, organization)
        if not self._acquire(should_stop):
            if stats is not None:
                stats.update(prompt_tokens=0, completion_tokens=0, finish_reason="cancelled")
            return
        try:
            weights = self._bind(model, served)
            prompt_ids = weights.render(messages)
            room = weights.context_length - len(prompt_ids)
            if room < 1:
                raise ServingError(
                    f"This model's maximum context length is {weights.context_length} tokens; "
                    f"the messages take {len(prompt_ids)} tokens, leaving no room for a reply.",
                    code="context_length_exceeded", param="messages")
            if params.max_tokens > room:
                params = dataclasses.replace(params, max_tokens=room)
            yield from weights.stream(prompt_ids, params, should_stop, stats)
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def hold(self, model: str, organization: str | None = None) -> Iterator[Weights]:
        """`model`'s weights for work beyond one chat completion, in this thread: evaluation
        generates and scores many prompts through them. Every other request waits until the
        block ends."""
        served = self._resolve(model, organization)
        with self._lock:
            yield self._bind(model, served)

    def complete(self, model: str, messages: list[dict], params: SamplingParams,
                 organization: str | None = None, should_stop: StopCheck | None = None,
                 on_text: Callable[[str], None] | None = None) -> Completion:
        stats: dict = {}
        pieces = []
        for piece in self.stream(model, messages, params, organization, should_stop, stats):
            pieces.append(piece)
            if on_text is not None:
                on_text(piece)
        return Completion("".join(pieces), stats["prompt_tokens"], stats["completion_tokens"],
                          stats["finish_reason"])

    def count_prompt_tokens(self, model: str, messages: list[dict],
                            organization: str | None = None) -> int:
        with self.hold(model, organization) as weights:
            return len(weights.render(messages))

    def unload(self, name: str) -> bool:
        """Forget a deleted model: drop its adapter (or base) from memory. True if it was loaded.

        `name` is the request model name (e.g. an ft: name) or the adapter folder.
        """
        with self._lock:
            for base in list(self._bases.values()):
                for key, adapter in list(base.adapters.items()):
                    if name in adapter.names or name == str(adapter.folder):
                        self._evict_adapter(base, key)
                        return True
            if name in self._bases:
                del self._bases[name]
                return True
        return False

    def loaded(self) -> dict:
        """What is in memory now: base models and their adapters, most recently used last."""
        with self._lock:
            return {
                base.name: {
                    "bytes": base.nbytes,
                    "adapters": [{"folder": str(a.folder), "bytes": a.nbytes,
                                  "names": sorted(a.names)} for a in base.adapters.values()],
                    "merge_buffer_bytes": base.lora.working_bytes,
                }
                for base in self._bases.values()
            }

    def adapter_bytes(self) -> int:
        return sum(a.nbytes for base in self._bases.values() for a in base.adapters.values())

    # -- internals -------------------------------------------------------------------------

    def _resolve(self, model: str, organization: str | None) -> ServedModel:
        try:
            return self.resolve(model, organization)
        except ModelNotFoundError:
            raise
        except (ValueError, OSError) as exc:
            raise ServingError(f"Model '{model}' cannot be served: {exc}", status=400,
                               code="model_not_available", param="model") from None

    def _acquire(self, should_stop: StopCheck | None) -> bool:
        while not self._lock.acquire(timeout=0.05):
            if should_stop is not None and should_stop():
                return False
        return True

    def _bind(self, name: str, served: ServedModel) -> Weights:
        """Put `served`'s weights in place (under the lock): its base, its adapter merged."""
        base = self._base(served.base)
        adapter = None
        if served.adapter_dir is not None:
            adapter = self._adapter(base, Path(served.adapter_dir))
            adapter.names.add(name)
        base.lora.activate(adapter.weights if adapter is not None else None)
        tokenizer = adapter.tokenizer if adapter is not None else base.tokenizer
        return Weights(base.model, tokenizer, base.context_length)

    def _base(self, name: str) -> _Base:
        if name in self._bases:
            self._bases.move_to_end(name)
            return self._bases[name]
        while len(self._bases) >= self.settings.max_base_models:
            self._bases.popitem(last=False)
        from strop.models import ModelError, load

        try:
            loaded = load(name, dtype=self.settings.dtype, progress=self.progress)
        except (ModelError, FileNotFoundError, OSError) as exc:
            raise ServingError(f"Base model '{name}' cannot be loaded: {exc}", status=500,
                               code="model_load_failed", type="server_error") from None
        network = loaded.model
        network.eval()
        groups = join_projections(network) if unsupported_reason(network) is None else []
        base = _Base(
            name=name,
            model=network,
            lora=MergedLora(network, groups),
            tokenizer=loaded.tokenizer,
            nbytes=_tensor_bytes(network.parameters()),
            context_length=loaded.context_length,
        )
        self._bases[name] = base
        return base

    def _adapter(self, base: _Base, folder: Path) -> _Adapter:
        key = _adapter_key(folder.resolve())
        if key in base.adapters:
            base.adapters.move_to_end(key)
            return base.adapters[key]
        needed = self._estimate_adapter_bytes(folder)
        budget = self.settings.adapter_memory_bytes
        if needed > budget:
            raise ServingError(
                f"The adapter in {folder} needs {needed:,} bytes, more than the whole adapter "
                f"memory budget ({budget:,} bytes; setting adapter_memory_bytes).",
                status=500, code="adapter_too_large", type="server_error")
        while self.adapter_bytes() + needed > budget:
            # This base's least recently used adapter first, then other bases' oldest.
            owner = base if base.adapters else next(b for b in self._bases.values() if b.adapters)
            self._evict_adapter(owner, next(iter(owner.adapters)))
        tokenizer = self._adapter_tokenizer(base, folder)
        started = time.perf_counter()
        try:
            weights = read_lora(folder, base.model.dtype)
            base.lora.check(weights)
        except AdapterFormatError as exc:
            raise ServingError(f"{exc} (base model {base.name})", status=500,
                               code="adapter_load_failed", type="server_error") from None
        adapter = _Adapter(key, folder, tokenizer, weights, weights.nbytes,
                           load_seconds=time.perf_counter() - started)
        base.adapters[key] = adapter
        return adapter

    def _evict_adapter(self, base: _Base, key: str) -> None:
        adapter = base.adapters.pop(key)
        base.lora.forget(adapter.weights)

    def _adapter_tokenizer(self, base: _Base, folder: Path):
        """The tokenizer saved with the adapter (its chat template is the one trained on)."""
        if not (folder / "tokenizer_config.json").is_file():
            return base.tokenizer
        from transformers import AutoTokenizer

        digest = hashlib.sha256()
        for path in sorted(folder.iterdir()):
            if path.is_file() and ("token" in path.name or path.name.startswith("chat_template")
                                   or path.name in ("vocab.json", "merges.txt")):
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
        key = digest.hexdigest()
        tokenizer = self._tokenizers.get(key)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(folder)
            self._tokenizers[key] = tokenizer
        if len(tokenizer) > base.model.get_input_embeddings().weight.shape[0]:
            raise ServingError(
                f"The tokenizer in {folder} has {len(tokenizer)} tokens but {base.name} has "
                "embeddings for fewer; the adapter was trained on another base model.",
                status=500, code="adapter_load_failed", type="server_error")
        return tokenizer

    def _estimate_adapter_bytes(self, folder: Path) -> int:
        """Bytes the adapter will take once loaded, read from the safetensors header."""
        import torch
        from safetensors import safe_open

        weights = folder / "adapter_model.safetensors"
        if not weights.is_file():
            raise ServingError(f"{folder} has no adapter_model.safetensors.", status=500,
                               code="adapter_load_failed", type="server_error")
        # The factors are kept in the serving precision (see read_lora).
        width = getattr(torch, self.settings.dtype).itemsize
        total = 0
        with safe_open(weights, framework="pt") as handle:
            for name in handle.keys():
                count = 1
                for dim in handle.get_slice(name).get_shape():
                    count *= dim
                total += count * width
        return total
