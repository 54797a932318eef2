"""Check a TrainConfig before any work, and resolve every "auto" to a number with its reason.

What "auto" picks (and why) — the table docs/training.md repeats:

- n_epochs: OpenAI's rule (3, raised so examples x epochs >= 100, at most 25; lowered so it
  stays <= 25,000, at least 1), so jobs ported from OpenAI see the same number of passes.
- batch_size: the power of two nearest n_examples / 32, between 1 and 16. Small models on a
  CPU learn more per token from more, smaller optimizer steps; 16 bounds the memory of one
  step, and ~32 steps per epoch keeps validation and checkpoints meaningful.
- learning_rate_multiplier: 1.0 times a base rate that suits the method: 2e-4 for LoRA and
  2e-5 for full fine-tuning (supervised and continued pretraining), 5e-5 for LoRA DPO and 1e-6
  for full DPO. These are the rates the LoRA and DPO papers and TRL's recipes settle on; the
  multiplier scales them the way OpenAI's scales its own base rate.
- beta (DPO): 0.1, the DPO paper's and TRL's default.
- max_seq_length: min(model context, 2048).
- eval_interval: total_steps // 10 (at least 1), so a run reports ten validation points.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from strop.train.config import (
    HYPERPARAMETER_RANGES,
    TrainConfig,
    TrainingError,
    openai_default_epochs,
    out_of_range,
)

BASE_LEARNING_RATE = {
    ("supervised", "lora"): 2e-4, ("supervised", "full"): 2e-5,
    ("pretrain", "lora"): 2e-4, ("pretrain", "full"): 2e-5,
    ("dpo", "lora"): 5e-5, ("dpo", "full"): 1e-6,
}
DEFAULT_BETA = 0.1


@dataclass
class Resolved:
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    learning_rate: float
    beta: float | None
    max_seq_length: int
    eval_interval: int
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    auto: dict  # which values "auto" chose

    def as_dict(self) -> dict:
        return asdict(self)


def _refuse(message: str, param: str) -> TrainingError:
    return TrainingError(message, "invalid_hyperparameters", param)


def check(config: TrainConfig) -> None:
    """Refuse invalid values and combinations; runs before any file or model is read."""
    h = config.hyperparameters
    for name in HYPERPARAMETER_RANGES:
        value = getattr(h, name)
        if name == "beta" and value != "auto" and config.method != "dpo":
            raise _refuse(f"beta applies only to the dpo method, not {config.method}", "beta")
        problem = out_of_range(name, value)
        if problem:
            raise _refuse(problem, name)
    if config.lora_rank < 1:
        raise _refuse(f"lora_rank must be at least 1, got {config.lora_rank}", "lora_rank")
    if config.lora_alpha <= 0:
        raise _refuse(f"lora_alpha must be positive, got {config.lora_alpha}", "lora_alpha")
    if not 0 <= config.lora_dropout < 1:
        raise _refuse(f"lora_dropout must be in [0, 1), got {config.lora_dropout}",
                      "lora_dropout")
    if config.max_seq_length is not None and config.max_seq_length < 8:
        raise _refuse(f"max_seq_length must be at least 8, got {config.max_seq_length}",
                      "max_seq_length")
    if not 0 <= config.warmup_ratio < 1:
        raise _refuse(f"warmup_ratio must be in [0, 1), got {config.warmup_ratio}",
                      "warmup_ratio")
    if config.weight_decay < 0:
        raise _refuse(f"weight_decay must not be negative, got {config.weight_decay}",
                      "weight_decay")
    if config.gradient_accumulation_steps < 1:
        raise _refuse("gradient_accumulation_steps must be at least 1",
                      "gradient_accumulation_steps")
    if h.batch_size != "auto" and config.gradient_accumulation_steps > h.batch_size:
        raise _refuse(
            f"gradient_accumulation_steps ({config.gradient_accumulation_steps}) cannot exceed "
            f"batch_size ({h.batch_size}): each accumulation step needs at least one example",
            "gradient_accumulation_steps")
    if not 0 <= config.validation_split < 1:
        raise _refuse(f"validation_split must be in [0, 1), got {config.validation_split}",
                      "validation_split")
    if config.eval_interval is not None and config.eval_interval < 1:
        raise _refuse("eval_interval must be at least 1 step", "eval_interval")
    if config.early_stopping_patience is not None:
        if config.early_stopping_patience < 1:
            raise _refuse("early_stopping_patience must be at least 1 evaluation",
                          "early_stopping_patience")
        if config.validation_file is None and config.validation_split == 0:
            raise _refuse("early stopping needs validation data: give a validation_file or a "
                          "validation_split above 0", "early_stopping_patience")
    if config.keep_checkpoints < 1:
        raise _refuse("keep_checkpoints must be at least 1", "keep_checkpoints")
    if config.merge and config.fine_tuning == "full":
        raise _refuse("merge applies to LoRA adapters; full fine-tuning already writes a full "
                      "model", "merge")
    if config.dpo_reference != "start" and config.method != "dpo":
        raise _refuse("dpo_reference applies only to the dpo method", "dpo_reference")
    if (config.dpo_reference == "base" and config.fine_tuning == "full"):
        raise _refuse("dpo_reference 'base' needs LoRA: with full fine-tuning the base and the "
                      "starting model are the same weights", "dpo_reference")
    for name, path in (("training_file", config.training_file),
                       ("validation_file", config.validation_file)):
        if path is not None and not path.is_file():
            raise TrainingError(f"{name} {path} does not exist", "invalid_file", name)
    if config.resume_from is not None and not config.resume_from.exists():
        raise TrainingError(f"resume_from {config.resume_from} does not exist",
                            "invalid_checkpoint", "resume_from")


def auto_batch_size(n_examples: int) -> int:
    if n_examples < 32:
        return 1
    return int(min(16, 2 ** round(math.log2(n_examples / 32))))


def resolve(config: TrainConfig, n_examples: int, context_length: int) -> Resolved:
    h = config.hyperparameters
    auto = {}
    epochs = h.n_epochs
    if epochs == "auto":
        epochs = auto["n_epochs"] = openai_default_epochs(n_examples)
    batch = h.batch_size
    if batch == "auto":
        batch = auto["batch_size"] = max(auto_batch_size(n_examples),
                                         config.gradient_accumulation_steps)
    batch = min(batch, n_examples)
    multiplier = h.learning_rate_multiplier
    if multiplier == "auto":
        multiplier = auto["learning_rate_multiplier"] = 1.0
    beta = None
    if config.method == "dpo":
        beta = h.beta
        if beta == "auto":
            beta = auto["beta"] = DEFAULT_BETA
    max_len = config.max_seq_length
    if max_len is None:
        max_len = auto["max_seq_length"] = min(context_length, 2048)
    elif max_len > context_length:
        raise _refuse(f"max_seq_length {max_len} exceeds the model's context of "
                      f"{context_length} tokens", "max_seq_length")
    steps_per_epoch = math.ceil(n_examples / batch)
    total = steps_per_epoch * epochs
    interval = config.eval_interval
    if interval is None:
        interval = auto["eval_interval"] = max(1, total // 10)
    rate = BASE_LEARNING_RATE[(config.method, config.fine_tuning)] * multiplier
    return Resolved(epochs, batch, multiplier, rate, beta, max_len, interval, steps_per_epoch,
                    total, math.ceil(config.warmup_ratio * total), auto)
