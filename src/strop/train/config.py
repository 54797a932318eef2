"""What a training run is asked to do, what it reports while running, and what it returns.

This is the contract between the training engine and its callers (the CLI and the worker).
Hyperparameters use OpenAI's names and ranges; strop's own settings sit beside them. The ranges
are defined here once: the API's request schemas (server/schemas.py), the run's config check
(train/hyperparameters.py) and the estimate all read HYPERPARAMETER_RANGES.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

Auto = Literal["auto"]


@dataclass(frozen=True)
class Range:
    """The values a hyperparameter may take: low..high, the low end excluded when `low_open`."""

    low: float
    high: float | None = None
    low_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and (self.high is None or value <= self.high)

    def __str__(self) -> str:
        if self.high is None:
            return f"greater than {self.low:g}" if self.low_open else f"at least {self.low:g}"
        if self.low_open:
            return f"in ({self.low:g}, {self.high:g}]"
        return f"between {self.low:g} and {self.high:g}"


# OpenAI's ranges; "auto" is allowed for every one of them.
HYPERPARAMETER_RANGES = {
    "n_epochs": Range(1, 50),
    "batch_size": Range(1, 256),
    "learning_rate_multiplier": Range(0, low_open=True),
    "beta": Range(0, 2, low_open=True),  # DPO only
}


def out_of_range(name: str, value: object) -> str | None:
    """Why `value` is not allowed for hyperparameter `name`, or None when it is."""
    if value == "auto" or value in HYPERPARAMETER_RANGES[name]:
        return None
    return f"{name} must be {HYPERPARAMETER_RANGES[name]}, got {value}"


class Hyperparameters(BaseModel):
    """OpenAI's fine-tuning hyperparameters; each may be "auto". Ranges are checked when a run
    starts (train/hyperparameters.check), so a config can be built first and refused with the
    parameter named."""

    model_config = ConfigDict(extra="forbid")

    n_epochs: int | Auto = Field("auto", description=str(HYPERPARAMETER_RANGES["n_epochs"]))
    batch_size: int | Auto = Field("auto", description=str(HYPERPARAMETER_RANGES["batch_size"]))
    learning_rate_multiplier: float | Auto = Field(
        "auto", description=str(HYPERPARAMETER_RANGES["learning_rate_multiplier"]))
    beta: float | Auto = Field(
        "auto", description=f"DPO only, {HYPERPARAMETER_RANGES['beta']}")


class TrainConfig(BaseModel):
    """One training run. Paths are local; the worker resolves file ids and ft: names first."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["supervised", "dpo", "pretrain"] = "supervised"
    model: str = Field(description="base model name, local folder, or a tuned model's folder")
    training_file: Path
    validation_file: Path | None = None
    output_dir: Path
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    seed: int = 42

    fine_tuning: Literal["lora", "full"] = "lora"
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: list[str] | Literal["all-linear"] = "all-linear"

    max_seq_length: int | None = Field(None, description="default: min(model context, 2048)")
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    gradient_accumulation_steps: int = 1
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    validation_split: float = Field(0.1, description="held out when no validation file")
    eval_interval: int | None = Field(None, description="steps between validations")
    early_stopping_patience: int | None = None
    keep_checkpoints: int = 3
    resume_from: Path | None = None
    merge: bool = Field(False, description="also write a merged full checkpoint")
    dpo_reference: Literal["start", "base"] = Field(
        "start", description="DPO reference: the starting model (a previous stage's adapter "
        "included) or the untuned base (LoRA only)")


class TrainingError(Exception):
    """A run that cannot start or cannot finish; `code` follows OpenAI's error codes."""

    def __init__(self, message: str, code: str = "training_failed", param: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param


StopRequest = Literal["cancel", "pause"] | None


class TrainCallback(Protocol):
    """How a run reports. Every method is called from the training thread."""

    def on_event(self, level: Literal["info", "warning", "error"], message: str,
                 data: dict | None = None) -> None: ...

    def on_metrics(self, metrics: dict) -> None:
        """step, train_loss, train_mean_token_accuracy, valid_loss, valid_mean_token_accuracy,
        full_valid_loss, full_valid_mean_token_accuracy (absent ones are None), plus
        total_steps, epoch, tokens_per_second, trained_tokens."""

    def on_checkpoint(self, step: int, path: Path, metrics: dict) -> None: ...

    def should_stop(self) -> StopRequest:
        """Polled once per optimizer step; "cancel" or "pause" ends the run within that step."""


class NullCallback:
    def on_event(self, level, message, data=None) -> None:
        pass

    def on_metrics(self, metrics) -> None:
        pass

    def on_checkpoint(self, step, path, metrics) -> None:
        pass

    def should_stop(self) -> StopRequest:
        return None


@dataclass
class TrainResult:
    status: Literal["succeeded", "cancelled", "paused"]
    output_dir: Path  # PEFT adapter (LoRA) or full model folder, with tokenizer and template
    steps: int
    total_steps: int
    trained_tokens: int
    metrics_csv: Path
    manifest: Path
    checkpoints: list[Path] = field(default_factory=list)
    final_metrics: dict = field(default_factory=dict)
    merged_dir: Path | None = None


def openai_default_epochs(n_examples: int) -> int:
    """OpenAI's "auto" epochs: 3, raised so that examples x epochs >= 100 (at most 25),
    lowered so that examples x epochs <= 25,000 (at least 1)."""
    if n_examples <= 0:
        return 3
    epochs = 3
    if n_examples * epochs < 100:
        epochs = min(25, -(-100 // n_examples))
    elif n_examples * epochs > 25_000:
        epochs = max(1, 25_000 // n_examples)
    return epochs
