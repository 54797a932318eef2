"""Training speed: strop versus plain TRL SFTTrainer, same model, data and hyperparameters.

    python bench/train.py [--train-examples 192] [--valid-examples 48] [--batch-size 8]

Both train the embedded SmolLM2-135M-Instruct with LoRA (rank 16, alpha 32, all linear
layers, learning rate 2e-4, linear schedule, 5% warmup, one epoch) on the same synthetic chat
examples of mixed lengths. TRL runs at its SFTConfig defaults except for the shared
hyperparameters and precision: both use what strop's "auto" picks for this machine (bf16 only
where the CPU computes it natively), since TRL's default bf16 on a CPU without it would make
the comparison meaningless. TRL keeps its other defaults (gradient checkpointing on, padding to
the longest example of a batch, loss on every token, no packing).

Printed: trained tokens per second for each (every token of every example, as OpenAI counts
trained tokens), the ratio, and each tuned model's validation loss: the mean negative
log-likelihood over the assistant tokens of the validation set, computed by one function for
both.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

MODEL = "smollm2-135m-instruct"
LEARNING_RATE = 2e-4
WARMUP_RATIO = 0.05
TOPICS = ["a late delivery", "a damaged parcel", "a double charge", "a password reset",
          "a change of address", "a refund request", "a missing invoice", "a cancelled order"]
FILLER = ("the order was placed last week and the customer has written twice since then about "
          "the same problem without getting a clear answer from anyone on the team").split()


def make_rows(n: int, seed: int) -> list[dict]:
    """Support conversations whose lengths vary from a dozen to a few hundred tokens."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = rng.choice(TOPICS)
        detail = " ".join(rng.choice(FILLER) for _ in range(rng.choice([3, 10, 30, 80])))
        ticket = rng.randint(1000, 9999)
        answer_detail = " ".join(rng.choice(FILLER) for _ in range(rng.choice([2, 8, 25, 60])))
        messages = []
        if rng.random() < 0.5:
            messages.append({"role": "system", "content": "You are a support agent for Acme."})
        messages.append({"role": "user", "content": f"Hello, I have {topic}. {detail}."})
        messages.append({"role": "assistant", "content":
                         f"Ticket {ticket}: I have logged {topic} and a colleague will follow "
                         f"up within one business day. Note: {answer_detail}."})
        rows.append({"messages": messages})
    return rows


def assistant_loss(model, tokenizer, rows: list[dict]) -> float:
    """Mean NLL over assistant tokens (with their end-of-turn token), one example at a time."""
    import torch

    from strop.data.masking import tokenize_chat

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            tokens = tokenize_chat(tokenizer, row["messages"])
            ids = torch.tensor([tokens.input_ids])
            logits = model(input_ids=ids).logits[0, :-1].float()
            targets = torch.tensor(tokens.input_ids[1:])
            keep = torch.tensor(tokens.trained[1:])
            losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
            total += float(losses[keep].sum())
            count += int(keep.sum())
    return total / count


def run_strop(train_file: Path, rows_valid, batch_size: int, out: Path) -> dict:
    from strop.models import load
    from strop.train import Hyperparameters, TrainConfig, run_training

    class Clock:
        start = end = cpu_start = cpu_end = None

        def on_event(self, *args, **kwargs):
            pass

        def on_metrics(self, metrics):
            self.end, self.cpu_end = time.perf_counter(), time.process_time()

        def on_checkpoint(self, *args):
            pass

        def should_stop(self):
            if self.start is None:
                self.start, self.cpu_start = time.perf_counter(), time.process_time()

    clock = Clock()
    result = run_training(TrainConfig(
        model=MODEL, training_file=train_file, output_dir=out, validation_split=0,
        hyperparameters=Hyperparameters(n_epochs=1, batch_size=batch_size,
                                        learning_rate_multiplier=1.0),
        warmup_ratio=WARMUP_RATIO, max_seq_length=512), clock)
    seconds = clock.end - clock.start
    tuned = load(str(result.output_dir))
    return {"tokens": result.trained_tokens, "seconds": seconds,
            "cpu_seconds": clock.cpu_end - clock.cpu_start,
            "tokens_per_second": result.trained_tokens / seconds,
            "valid_loss": assistant_loss(tuned.model, tuned.tokenizer, rows_valid),
            "precision": json.loads(result.manifest.read_text())["precision"]}


def run_trl(rows_train, rows_valid, batch_size: int, out: Path, precision: str) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from strop.models import load

    base = load(MODEL)
    trainer = SFTTrainer(
        model=base.model, processing_class=base.tokenizer,
        train_dataset=Dataset.from_list(rows_train),
        peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                               target_modules="all-linear", task_type="CAUSAL_LM"),
        args=SFTConfig(output_dir=str(out), per_device_train_batch_size=batch_size,
                       num_train_epochs=1, learning_rate=LEARNING_RATE,
                       lr_scheduler_type="linear", max_length=512,
                       warmup_steps=math.ceil(WARMUP_RATIO * math.ceil(len(rows_train) / batch_size)),
                       bf16=precision == "bf16", use_cpu=True, save_strategy="no",
                       report_to="none", logging_steps=1000, seed=42, dataloader_num_workers=0),
    )
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    cpu_start = time.process_time()
    output = trainer.train()
    cpu_seconds = time.process_time() - cpu_start
    seconds = output.metrics["train_runtime"]
    return {"tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / seconds,
            "cpu_seconds": cpu_seconds,
            "valid_loss": assistant_loss(trainer.model, base.tokenizer, rows_valid)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-examples", type=int, default=192)
    parser.add_argument("--valid-examples", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rows_train = make_rows(args.train_examples, seed=1)
    rows_valid = make_rows(args.valid_examples, seed=2)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        train_file = scratch / "train.jsonl"
        train_file.write_text("\n".join(json.dumps(r) for r in rows_train) + "\n")
        strop = run_strop(train_file, rows_valid, args.batch_size, scratch / "strop")
        trl = run_trl(rows_train, rows_valid, args.batch_size, scratch / "trl", strop["precision"])
    print(f"model {MODEL}, LoRA r16, {args.train_examples} train / {args.valid_examples} valid "
          f"examples, batch {args.batch_size}, 1 epoch, precision {strop['precision']}, "
          f"{torch.get_num_threads()} threads")
    # CPU seconds (this process's own compute) are printed too: on a shared machine the
    # wall-clock rate depends on what else runs, the CPU-time rate much less.
    for name, run in (("strop", strop), ("TRL SFTTrainer", trl)):
        print(f"{name:15s} {run['tokens']:7d} tokens in {run['seconds']:7.1f} s = "
              f"{run['tokens_per_second']:8.1f} tokens/s ({run['tokens'] / run['cpu_seconds']:.1f} "
              f"per CPU-second), validation loss {run['valid_loss']:.4f}")
    print(f"speed ratio strop/TRL: {strop['tokens_per_second'] / trl['tokens_per_second']:.2f}x "
          f"wall clock, {trl['cpu_seconds'] / trl['tokens'] * strop['tokens'] / strop['cpu_seconds']:.2f}x "
          f"CPU time; validation loss strop/TRL: {strop['valid_loss'] / trl['valid_loss']:.3f}")


if __name__ == "__main__":
    main()
