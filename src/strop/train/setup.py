"""Turn a model name into a trainable model: a fresh LoRA, a continued adapter, or full weights.

A run may start from a previous run's adapter folder (multi-stage: SFT, then DPO or domain
adaptation). With LoRA the same adapter keeps training, so the result is still one standard
PEFT adapter over the original base; with full fine-tuning the adapter is merged first.
"""

from __future__ import annotations

from dataclasses import dataclass

from strop.models.adapters import adapter_base, is_adapter_folder, load_adapter
from strop.train.config import TrainConfig, TrainingError


@dataclass
class TrainableModel:
    model: object  # PeftModel (LoRA) or PreTrainedModel (full)
    tokenizer: object
    base_model: str  # name of the original base, as strop.models.load takes it
    base_folder: str
    started_from_adapter: bool


def pad_token_id(tokenizer) -> int:
    """Padding never carries loss (targets are IGNORE there), so any id is safe as filler;
    prefer the real pad token, else EOS (SmolLM2's pad == eos is harmless here)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


def lora_config(config: TrainConfig):
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        task_type="CAUSAL_LM",
    )


def load_trainable(config: TrainConfig) -> TrainableModel:
    import torch
    from peft import get_peft_model

    from strop.models import ModelError, load

    try:
        if is_adapter_folder(config.model):
            base_name = adapter_base(config.model)
            loaded = load_adapter(config.model, trainable=config.fine_tuning == "lora")
            model = loaded.model
            base_folder = str(model.get_base_model().config._name_or_path)
            if config.fine_tuning == "full":
                model = model.merge_and_unload()
            started = True
        else:
            loaded = load(config.model)
            base_name, base_folder, started = config.model, str(loaded.folder), False
            model = loaded.model
            if config.fine_tuning == "lora":
                torch.manual_seed(config.seed)  # LoRA A matrices are drawn at random
                model = get_peft_model(model, lora_config(config))
    except ModelError as exc:
        raise TrainingError(str(exc), "invalid_model", "model") from None
    model.train()
    if config.fine_tuning == "full":
        for parameter in model.parameters():
            parameter.requires_grad_(True)
    return TrainableModel(model, loaded.tokenizer, base_name, base_folder, started)
