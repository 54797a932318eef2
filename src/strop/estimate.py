"""What a fine-tuning run will cost: billed tokens and price on OpenAI, FLOPs and time here.

Prices live in prices.json (shipped beside this module; `prices_path` replaces it), never in code.
Local compute:
- Full fine-tuning costs ~6 x parameters FLOPs per token: 2 for the forward pass, 4 for the
  backward pass (gradients with respect to activations and to every weight).
- LoRA freezes the base weights, so the backward pass skips their weight gradients but still
  propagates activation gradients through every layer: ~4 x parameters per token (forward 2 +
  backward 2), plus a negligible amount for the small adapter matrices; gradient checkpointing
  adds one more forward pass (~6 x). The optimizer step touches only the adapter, so its memory
  and time are tiny; the saving is mostly memory, not FLOPs.
Wall time comes from a short calibration run of the real training step on this machine
(strop.train.throughput, cached per model and machine).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

DEFAULT_PRICES = Path(__file__).with_name("prices.json")
FLOPS_PER_PARAM_TOKEN = {"full": 6, "lora": 4}


class EstimateError(ValueError):
    """A file or price table the estimate cannot use; the message says what to fix."""


@dataclass
class PricedModel:
    name: str
    label: str
    training_cost: float | None  # USD for this file and epochs; None when billed per hour
    basis: str  # how the figure was computed, in words
    inference: dict = field(default_factory=dict)


@dataclass
class Estimate:
    file: str
    format: str
    examples: int
    model: str
    fine_tuning: str
    epochs: int
    epochs_auto: bool
    tokens_per_epoch: int  # every token of every example, as OpenAI bills
    trained_tokens_per_epoch: int  # tokens the loss is computed on
    billed_tokens: int  # tokens_per_epoch x epochs
    prices: list[PricedModel]
    currency: str
    parameters: int | None
    training_flops: float | None
    flops_note: str
    tokens_per_second: float | None
    wall_seconds: float | None
    wall_note: str

    def to_dict(self) -> dict:
        return asdict(self)


def load_prices(path: str | Path | None = None) -> dict:
    path = Path(path) if path else DEFAULT_PRICES
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EstimateError(f"Price table not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise EstimateError(f"Price table {path} is not valid JSON: {exc}") from None
    models = table.get("models") if isinstance(table, dict) else None
    if not isinstance(models, list):
        raise EstimateError(f"Price table {path} needs a 'models' list (see {DEFAULT_PRICES}).")
    for index, entry in enumerate(models):
        training = entry.get("training") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not (
                isinstance(training, dict)
                and any(isinstance(training.get(k), (int, float))
                        for k in ("per_million_tokens", "per_hour"))):
            raise EstimateError(
                f"Price table {path}, models[{index}]: needs 'name' and 'training' with "
                "'per_million_tokens' or 'per_hour' (a number).")
    return table


def price_training(table: dict, billed_tokens: int) -> list[PricedModel]:
    """Training cost of `billed_tokens` for every model in the price table."""
    priced = []
    for entry in table["models"]:
        training = entry["training"]
        label = entry.get("label", entry["name"])
        if "per_million_tokens" in training:
            rate = float(training["per_million_tokens"])
            cost = billed_tokens / 1_000_000 * rate
            basis = f"{billed_tokens:,} tokens x ${rate:g}/1M"
        else:
            cost = None
            basis = (f"${float(training['per_hour']):g} per training hour (wall-clock time "
                     "of the grader-driven run; not derivable from token counts)")
        priced.append(PricedModel(entry["name"], label, cost, basis, entry.get("inference", {})))
    return priced


def resolve_epochs(epochs: int | str, n_examples: int) -> tuple[int, bool]:
    from strop.train.config import HYPERPARAMETER_RANGES, openai_default_epochs, out_of_range

    if epochs == "auto":
        return openai_default_epochs(n_examples), True
    try:
        value = int(epochs)
    except (TypeError, ValueError):
        raise EstimateError(f"epochs must be a whole number "
                            f"{HYPERPARAMETER_RANGES['n_epochs']} or 'auto', got {epochs!r}") from None
    problem = out_of_range("n_epochs", value)
    if problem:
        raise EstimateError(f"{problem} (OpenAI's range)")
    return value, False


def training_flops(parameters: int | None, tokens: int, fine_tuning: str) -> float | None:
    if parameters is None:
        return None
    return float(FLOPS_PER_PARAM_TOKEN[fine_tuning]) * parameters * tokens


def calibration_length(p95_tokens: float, max_seq_length: int) -> int:
    """The sequence length to calibrate at: supervised examples are trained one sequence each
    (not packed to max_seq_length), so the data's long-end length (p95), rounded up to a power
    of two so that cached calibrations are reused, and capped at the training's limit."""
    length = 64
    while length < p95_tokens and length < max_seq_length:
        length *= 2
    return min(length, max_seq_length)


def _throughput(model: str, fine_tuning: str, max_seq_length: int) -> tuple[float | None, str]:
    try:
        from strop.train.throughput import tokens_per_second
    except ImportError:
        return None, ("wall time unavailable: this installation has no training-throughput "
                      "calibration (strop.train.throughput)")
    try:
        rate = float(tokens_per_second(model, fine_tuning=fine_tuning,
                                       max_seq_length=max_seq_length))
    except Exception as exc:  # calibration runs real training code; say why it failed
        return None, f"wall time unavailable: calibration failed ({type(exc).__name__}: {exc})"
    return rate, (f"{rate:,.0f} tokens/s measured by a short calibration run of the real "
                  f"{fine_tuning} training step at sequence length {max_seq_length} on this "
                  "machine (cached per model and machine)")


def estimate(path: str | Path, model: str = "smollm2-135m-instruct", epochs: int | str = "auto",
             prices_path: str | Path | None = None, fine_tuning: str = "lora",
             max_seq_length: int | None = None,
             progress: Callable[[str], None] | None = None) -> Estimate:
    """Estimate cost and compute for fine-tuning `model` on the file at `path`."""
    from strop.data.records import DataFileError
    from strop.data.tokenizer import count_parameters, load_tokenizer
    from strop.data.validate import analyse_file

    if fine_tuning not in FLOPS_PER_PARAM_TOKEN:
        raise EstimateError(f"fine_tuning must be 'lora' or 'full', got {fine_tuning!r}")
    table = load_prices(prices_path)  # fail on a bad table before the slow part
    tokenizer, context = load_tokenizer(model, progress)
    report, _ = analyse_file(path, tokenizer, context, exact_counts=True)
    if not report.ok:
        raise DataFileError(f"Cannot estimate {path}: {report.openai_error()['message']} "
                            "Run `strop data check` for every problem.")
    stats = report.stats
    n_epochs, auto = resolve_epochs(epochs, stats["examples"])
    per_epoch = stats["tokens"]["total"]
    billed = per_epoch * n_epochs
    parameters = count_parameters(model)
    flops = training_flops(parameters, billed, fine_tuning)
    sequence = calibration_length(stats["per_example"]["total"]["p95"],
                                  max_seq_length or min(context or 2048, 2048))
    rate, wall_note = _throughput(model, fine_tuning, sequence)
    flops_note = (
        "full fine-tuning: ~6 x parameters x tokens (forward 2, backward 4)"
        if fine_tuning == "full" else
        "LoRA: ~4 x parameters x tokens. The frozen base still runs forward (2) and passes "
        "gradients backward through every layer (2); only the base weights' own gradients "
        "(the other 2 of full fine-tuning's 6) are skipped. Gradient checkpointing adds a "
        "forward pass (~6). The adapter's optimizer step is negligible.")
    return Estimate(
        file=str(path), format=report.format, examples=stats["examples"], model=model,
        fine_tuning=fine_tuning, epochs=n_epochs, epochs_auto=auto, tokens_per_epoch=per_epoch,
        trained_tokens_per_epoch=stats["tokens"]["trained"], billed_tokens=billed,
        prices=price_training(table, billed), currency=table.get("currency", "USD"),
        parameters=parameters, training_flops=flops, flops_note=flops_note,
        tokens_per_second=rate, wall_seconds=billed / rate if rate else None, wall_note=wall_note)
