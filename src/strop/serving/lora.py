"""LoRA adapters applied by merging the active one into the base model's serving weights.

Why merge rather than run the adapter beside the base (PEFT's way): on this CPU a decode step is
bound by memory traffic and by the number of small operations, and an unmerged adapter adds two
small matmuls, a scale and an add to every adapted layer (about 200 more operations per token
for a 30-layer model), which measured about 2x slower than the merged model. Merging into the
base weights in place would drift with every switch (W + d - d != W in rounding), so the base
weights are never written: each adapted layer gets one extra "working" tensor that holds
W + delta of the active adapter, and switching back to the base only points the layer at its
pristine tensor again. Switching to another adapter recomputes the working tensors (one pass over
the adapted weights, ~0.1-0.3 s for the 135M model); requests for the same adapter in a row
switch nothing.

Only plain LoRA on Linear layers is served this way; DoRA, LoRA on embeddings, trainable
`modules_to_save` and LoRA biases are refused with a message saying so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

PREFIX = "base_model.model."


class AdapterFormatError(ValueError):
    """An adapter folder the serving engine cannot apply; the message names the folder."""


@dataclass
class LoraWeights:
    """One adapter's low-rank factors, per adapted module path of the base model."""

    folder: Path
    factors: dict[str, tuple[object, object, float]]  # path -> (A [r, in], B [out, r], scale)

    @property
    def nbytes(self) -> int:
        return sum(a.numel() * a.element_size() + b.numel() * b.element_size()
                   for a, b, _ in self.factors.values())


def _pattern_value(patterns: dict, module: str, default):
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def read_lora(folder: Path, dtype) -> LoraWeights:
    """Read a PEFT LoRA folder, keeping the factors in `dtype` (the serving precision)."""
    from safetensors.torch import load_file

    config_path = folder / "adapter_config.json"
    weights_path = folder / "adapter_model.safetensors"
    if not weights_path.is_file():
        raise AdapterFormatError(f"{folder} has no adapter_model.safetensors.")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise AdapterFormatError(f"{config_path} cannot be read: {exc}") from None
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterFormatError(f"{folder} is a {config.get('peft_type')} adapter; only LoRA "
                                 "adapters can be served.")
    for flag, what in (("use_dora", "DoRA"), ("lora_bias", "LoRA biases")):
        if config.get(flag):
            raise AdapterFormatError(f"{folder} uses {what}, which strop does not serve; export "
                                     "it merged (`strop models export --merged`) and serve that.")
    if config.get("modules_to_save"):
        raise AdapterFormatError(
            f"{folder} trains whole modules ({', '.join(config['modules_to_save'])}) beside the "
            "LoRA factors; export it merged (`strop models export --merged`) and serve that.")
    alpha = float(config.get("lora_alpha", 8))
    alpha_pattern = config.get("alpha_pattern") or {}
    rslora = bool(config.get("use_rslora"))
    transpose = bool(config.get("fan_in_fan_out"))

    tensors = load_file(str(weights_path))
    pairs: dict[str, dict[str, object]] = {}
    for key, tensor in tensors.items():
        match = re.fullmatch(rf"{re.escape(PREFIX)}(.+)\.lora_([AB])(?:\.[^.]+)?\.weight", key)
        if match is None:
            raise AdapterFormatError(
                f"{folder}: tensor '{key}' is not a LoRA factor of a Linear layer; only plain "
                "LoRA on Linear layers is served.")
        pairs.setdefault(match.group(1), {})[match.group(2)] = tensor
    factors = {}
    for module, pair in pairs.items():
        if set(pair) != {"A", "B"}:
            raise AdapterFormatError(f"{folder}: module {module} has only lora_{''.join(pair)}.")
        a, b = pair["A"], pair["B"]
        rank = a.shape[0]
        module_alpha = float(_pattern_value(alpha_pattern, module, alpha))
        scale = module_alpha / (rank ** 0.5 if rslora else rank)
        if transpose:
            a, b = b.T.contiguous(), a.T.contiguous()
        factors[module] = (a.to(dtype), b.to(dtype), scale)
    if not factors:
        raise AdapterFormatError(f"{folder}: adapter_model.safetensors holds no LoRA factors.")
    return LoraWeights(folder, factors)


class MergedLora:
    """Keeps one adapter (or none) merged into a model's Linear layers, never touching the
    base weights themselves. Not thread-safe: the engine calls it under its generation lock."""

    def __init__(self, model, groups: list[tuple[str, ...]] = ()):
        self.model = model
        self.modules = dict(model.named_modules())
        # Layers whose weights are adjacent rows of one tensor (strop.serving.decoder.join_projections)
        # get their working tensors adjacent too, so the decoder keeps one product per group.
        self.group_of = {path: tuple(group) for group in groups for path in group}
        self.pristine: dict[str, object] = {}  # path -> the base weight tensor
        self.working: dict[str, object] = {}  # path -> buffer reused for W + delta
        self.active: LoraWeights | None = None

    def check(self, lora: LoraWeights) -> None:
        """Refuse an adapter that does not fit this model, before it is cached."""
        import torch

        tied = {id(p) for p in self.model.get_input_embeddings().parameters()}
        for path, (a, b, _) in lora.factors.items():
            module = self.modules.get(path)
            if not isinstance(module, torch.nn.Linear):
                raise AdapterFormatError(
                    f"{lora.folder}: the adapter changes '{path}', which is not a Linear layer of "
                    "this base model; it was trained on another model.")
            if tuple(module.weight.shape) != (b.shape[0], a.shape[1]):
                raise AdapterFormatError(
                    f"{lora.folder}: '{path}' is {tuple(module.weight.shape)} in the base model "
                    f"but the adapter expects {(b.shape[0], a.shape[1])}; it was trained on "
                    "another model.")
            if id(module.weight) in tied:
                raise AdapterFormatError(
                    f"{lora.folder}: the adapter changes '{path}', whose weights are tied to the "
                    "input embeddings; export it merged (`strop models export --merged`).")

    def activate(self, lora: LoraWeights | None) -> None:
        if lora is self.active:
            return
        import torch

        wanted = lora.factors if lora is not None else {}
        groups = {self.group_of.get(path, (path,)) for path in wanted}
        touched = {path for group in groups for path in group}
        with torch.no_grad():
            for path in list(self.pristine):
                if path not in touched:
                    self.modules[path].weight.data = self.pristine[path]
            for group in groups:
                for path, buffer in zip(group, self._working_buffers(group)):
                    base = self.pristine[path]
                    if path in wanted:
                        a, b, scale = wanted[path]
                        # out of place: for a float32 base, .float() is the pristine tensor itself
                        buffer.copy_(torch.addmm(base.float(), b.float(), a.float(), alpha=scale))
                    else:
                        buffer.copy_(base)  # an unadapted sibling keeps its group adjacent
                    self.modules[path].weight.data = buffer
        self.active = lora

    def _working_buffers(self, group: tuple[str, ...]) -> list:
        """The working tensors of a group's layers: views of one tensor, allocated once."""
        import torch

        if group[0] not in self.working:
            bases = [self.pristine.setdefault(path, self.modules[path].weight.data)
                     for path in group]
            joined = torch.empty((sum(base.shape[0] for base in bases), bases[0].shape[1]),
                                 dtype=bases[0].dtype)
            offset = 0
            for path, base in zip(group, bases):
                self.working[path] = joined[offset:offset + base.shape[0]]
                offset += base.shape[0]
        return [self.working[path] for path in group]

    def forget(self, lora: LoraWeights) -> None:
        if self.active is lora:
            self.activate(None)

    @property
    def working_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.working.values())
