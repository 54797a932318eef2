"""How many tokens per second training runs at on this machine, measured, not guessed.

A short calibration runs the real optimizer step (the same packing, precision, LoRA setup and
loss code as `run_training`) on synthetic chat-shaped sequences, and caches the result per
model, fine-tuning kind, sequence length and machine (CPU model, thread count, torch version)
in STROP_HOME/calibration.json. `strop estimate` divides a job's tokens by it.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path


CALIBRATION_VERSION = 1
SEQUENCES_PER_STEP = 2
TIMED_STEPS = 3


def machine_id() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return f"{cpu} x{torch.get_num_threads()} threads, {device}, torch {torch.__version__}"


def _cache_path() -> Path:
    from strop.settings import Settings

    return Settings.load().calibration_path


def _read_cache() -> dict:
    path = _cache_path()
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(cache: dict) -> None:
    path = _cache_path()
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(cache, indent=2))
    os.replace(partial, path)


def tokens_per_second(model: str, fine_tuning: str = "lora", max_seq_length: int = 512,
                      recalibrate: bool = False) -> float:
    """Training tokens per second (prompt and answer tokens alike, as OpenAI bills them).
    The first call per key measures (seconds to a minute); `recalibrate` measures again, e.g.
    after a calibration taken while the machine was busy."""
    key = f"v{CALIBRATION_VERSION}|{model}|{fine_tuning}|{max_seq_length}|{machine_id()}"
    cache = _read_cache()
    if key in cache and not recalibrate:
        return float(cache[key]["tokens_per_second"])
    rate = _measure(model, fine_tuning, max_seq_length)
    cache[key] = {"tokens_per_second": rate, "measured_at": time.time()}
    _write_cache(cache)
    return rate


def _synthetic_sequences(vocab_size: int, length: int, generator):
    """Chat-shaped: the first half is context, the second half is the trained answer."""
    import torch

    from strop.data.masking import Tokenized

    sequences = []
    for _ in range(SEQUENCES_PER_STEP):
        ids = torch.randint(0, vocab_size, (length,), generator=generator).tolist()
        sequences.append([Tokenized(ids, [t >= length // 2 for t in range(length)])])
    return sequences


def _measure(model: str, fine_tuning: str, max_seq_length: int) -> float:
    import torch
    from accelerate import Accelerator

    from strop.train.config import TrainConfig
    from strop.train.engine import TargetLogProbs, resolve_precision
    from strop.train.run import _sft_step
    from strop.train.setup import load_trainable, pad_token_id

    config = TrainConfig(model=model, training_file=Path("calibration"),
                         output_dir=Path("calibration"), fine_tuning=fine_tuning)
    precision = resolve_precision(config.precision)
    # cpu=True is what makes accelerate set up multi-process CPU (gloo) under a launcher.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    trainable = load_trainable(config)
    parameters = [p for p in trainable.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-6)
    module, optimizer = accelerator.prepare(TargetLogProbs(trainable.model, precision), optimizer)
    pad = pad_token_id(trainable.tokenizer)
    vocab = int(trainable.model.config.vocab_size)
    context = int(getattr(trainable.model.config, "max_position_embeddings", max_seq_length))
    # Real examples average well under the limit; half of it is a typical chat length.
    length = max(16, min(max_seq_length, context) // 2)
    generator = torch.Generator().manual_seed(0)

    def step() -> int:
        examples = _synthetic_sequences(vocab, length, generator)
        _, _, tokens = _sft_step(module, examples, pad, accelerator, 1)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return tokens

    step()  # warm-up: allocator, kernels, lazy initialisation
    start = time.perf_counter()
    tokens = sum(step() for _ in range(TIMED_STEPS))
    return tokens / (time.perf_counter() - start)
