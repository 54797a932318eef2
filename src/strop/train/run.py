"""One training run, written out: supervised fine-tuning, DPO and continued pretraining.

The recipe, in order:
 1. check the config (refuse before any work), read and tokenize the data, resolve "auto";
 2. load the model (fresh LoRA, continued adapter, or full weights); for DPO, compute the
    reference log-probabilities once with the starting model;
 3. for each optimizer step: the step's examples come from a seeded per-epoch permutation
    (so the data order is a pure function of seed and step, which is what makes pause/resume
    exact), are packed into rows, and the loss is the mean over the step's target tokens;
 4. validate at an interval (one validation batch) and at each epoch end (the whole set),
    checkpoint at each epoch end (strop.train.checkpoints), stop early when validation stops
    improving;
 5. write the adapter, results.csv and manifest.json.

It runs as is under `accelerate launch`: the Accelerator places the model and wraps it for
DDP; each process takes every world_size-th micro-batch of a step.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from strop.data.records import write_records
from strop.models.adapters import save_merged
from strop.train import hyperparameters
from strop.train.checkpoints import Progress, fingerprint, resume, restore_best, rotate, save_state
from strop.train.throughput import machine_id
from strop.train.config import NullCallback, TrainCallback, TrainConfig, TrainingError, TrainResult
from strop.train.engine import TargetLogProbs, batch_log_probs, dpo_loss, resolve_precision, sequence_sums
from strop.data.masking import Tokenized
from strop.train.outputs import (
    library_versions,
    save_inference_folder,
    sha256_file,
    weights_hash,
    write_manifest,
    write_results_csv,
)
from strop.train.packing import pack
from strop.train.records import PreferencePair, pack_documents, read_jsonl, tokenize_records
from strop.train.setup import TrainableModel, load_trainable, pad_token_id

HELD_OUT_FILE = "held_out.jsonl"  # the validation split taken from the training file


@dataclass
class Data:
    train: list  # list of examples; an example is a list of Tokenized segments or a PreferencePair
    valid: list
    truncated: int = 0


def run_training(config: TrainConfig, callback: TrainCallback = NullCallback()) -> TrainResult:
    hyperparameters.check(config)
    from accelerate import Accelerator

    precision = resolve_precision(config.precision)
    # cpu=True is what makes accelerate set up multi-process CPU (gloo) under a launcher.
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    trainable = load_trainable(config)
    tokenizer = trainable.tokenizer
    context = int(getattr(trainable.model.config, "max_position_embeddings", 2048))
    data = _read_data(config, tokenizer, context, callback)
    plan = hyperparameters.resolve(config, len(data.train), context)
    if config.max_seq_length is None:
        data = _truncate(data, plan.max_seq_length, callback)
    if plan.batch_size < accelerator.num_processes:
        raise TrainingError(f"batch_size {plan.batch_size} is smaller than the "
                            f"{accelerator.num_processes} training processes; each needs at "
                            "least one example per step", "invalid_hyperparameters",
                            "batch_size")
    callback.on_event("info", f"Training {len(data.train)} examples for {plan.n_epochs} epochs, "
                      f"{plan.total_steps} steps, batch size {plan.batch_size}, learning rate "
                      f"{plan.learning_rate:g}, {precision}", {"hyperparameters": plan.as_dict()})

    model = trainable.model
    trainable_parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable_parameters, lr=plan.learning_rate,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(plan))
    module, optimizer = accelerator.prepare(TargetLogProbs(model, precision), optimizer)
    pad = pad_token_id(tokenizer)

    references = None
    if config.method == "dpo":
        references = _reference_log_probs(module, data, plan, pad, accelerator, config)

    output_dir = Path(config.output_dir)
    (output_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    progress = Progress()
    if config.resume_from is not None:
        progress = resume(config, trainable.model, optimizer, scheduler, plan, callback)
    else:
        torch.manual_seed(config.seed)
        random.seed(config.seed)

    run_fingerprint = fingerprint(config, plan)
    start_time = time.perf_counter() - progress.elapsed
    steps_since_rate, tokens_since_rate, rate_clock = 0, 0, time.perf_counter()
    stopped_early = False
    status = "succeeded"

    def save_checkpoint(reason: str) -> Path:
        progress.elapsed = time.perf_counter() - start_time
        folder = output_dir / "checkpoints" / f"step-{progress.step}"
        if folder not in progress.checkpoints:
            progress.checkpoints.append(folder)
        if accelerator.is_main_process:
            save_inference_folder(accelerator.unwrap_model(module).model, tokenizer, folder,
                                  trainable.base_model)
            save_state(folder, progress, optimizer, scheduler, run_fingerprint, reason)
        rotate(progress, config.keep_checkpoints)
        return folder

    while progress.step < plan.total_steps:
        request = callback.should_stop()
        if request == "cancel":
            status = "cancelled"
            callback.on_event("info", f"Cancelled at step {progress.step}")
            break
        if request == "pause":
            folder = save_checkpoint("pause")
            callback.on_checkpoint(progress.step, folder, _last_metrics(progress))
            callback.on_event("info", f"Paused at step {progress.step}; resume from {folder}",
                              {"checkpoint": str(folder)})
            status = "paused"
            break

        epoch, index_in_epoch = divmod(progress.step, plan.steps_per_epoch)
        indices = _epoch_order(len(data.train), config.seed, epoch)[
            index_in_epoch * plan.batch_size:(index_in_epoch + 1) * plan.batch_size]
        examples = [data.train[i] for i in indices]
        module.train()
        if references is not None:
            ref = references["train"][indices]
            loss, accuracy, tokens = _dpo_step(module, examples, ref, plan, pad, accelerator,
                                               config.gradient_accumulation_steps)
        else:
            loss, accuracy, tokens = _sft_step(module, examples, pad, accelerator,
                                               config.gradient_accumulation_steps)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        progress.step += 1
        progress.trained_tokens += tokens
        progress.epoch_loss_sum += loss
        progress.epoch_steps += 1
        steps_since_rate += 1
        tokens_since_rate += tokens
        now = time.perf_counter()
        tokens_per_second = tokens_since_rate / max(now - rate_clock, 1e-9)

        row = {"step": progress.step, "train_loss": loss, "train_mean_token_accuracy": accuracy,
               "valid_loss": None, "valid_mean_token_accuracy": None,
               "full_valid_loss": None, "full_valid_mean_token_accuracy": None}
        epoch_end = progress.step % plan.steps_per_epoch == 0 or progress.step == plan.total_steps
        if data.valid and (progress.step % plan.eval_interval == 0 or epoch_end):
            window = _validation_window(len(data.valid), plan.batch_size, progress.step)
            row["valid_loss"], row["valid_mean_token_accuracy"] = _evaluate(
                module, data.valid, window, references, "valid", plan, pad)
        if epoch_end and data.valid:
            everything = list(range(len(data.valid)))
            row["full_valid_loss"], row["full_valid_mean_token_accuracy"] = _evaluate(
                module, data.valid, everything, references, "valid", plan, pad)
        progress.history.append(row)
        callback.on_metrics(dict(row, total_steps=plan.total_steps, epoch=epoch + 1,
                                 tokens_per_second=tokens_per_second,
                                 trained_tokens=progress.trained_tokens))
        if steps_since_rate >= 10:
            steps_since_rate, tokens_since_rate, rate_clock = 0, 0, time.perf_counter()

        if epoch_end:
            _watch_overfitting(progress, row, callback)
            folder = save_checkpoint("epoch")
            callback.on_checkpoint(progress.step, folder, row)
            if _early_stop(config, progress, row, callback):
                stopped_early = True
                break

    progress.elapsed = time.perf_counter() - start_time
    results_csv = output_dir / "results.csv"
    if accelerator.is_main_process:
        write_results_csv(results_csv, progress.history)
    adapter_dir = output_dir / "adapter"
    merged_dir = None
    if status == "succeeded":
        if stopped_early or (config.early_stopping_patience and progress.best_step):
            restore_best(progress, accelerator.unwrap_model(module).model, callback)
        if accelerator.is_main_process:
            save_inference_folder(accelerator.unwrap_model(module).model, tokenizer, adapter_dir,
                                  trainable.base_model)
            if config.merge:  # a plain float32 model folder for any runtime
                merged_dir = output_dir / "merged"
                shutil.rmtree(merged_dir, ignore_errors=True)
                save_merged(adapter_dir, merged_dir)
    manifest = output_dir / "manifest.json"
    if accelerator.is_main_process:
        write_manifest(manifest, _manifest(config, trainable, plan, precision, progress, status,
                                           stopped_early, data))
    accelerator.wait_for_everyone()
    checkpoints = [Path(c) for c in progress.checkpoints if Path(c).exists()]
    return TrainResult(status=status, output_dir=adapter_dir, steps=progress.step,
                       total_steps=plan.total_steps, trained_tokens=progress.trained_tokens,
                       metrics_csv=results_csv, manifest=manifest, checkpoints=checkpoints,
                       final_metrics=_last_metrics(progress), merged_dir=merged_dir)


# --- data ---------------------------------------------------------------------------------


def _read_data(config: TrainConfig, tokenizer, context: int, callback) -> Data:
    method = config.method
    records = read_jsonl(config.training_file)
    train = tokenize_records(records, tokenizer, method, config.training_file.name)
    valid = []
    if config.validation_file is not None:
        valid = tokenize_records(read_jsonl(config.validation_file, "validation_file"),
                                 tokenizer, method, config.validation_file.name,
                                 "validation_file")
    elif config.validation_split > 0 and len(train) >= 10:
        order = list(range(len(train)))
        random.Random(config.seed).shuffle(order)
        held = max(1, round(len(train) * config.validation_split))
        valid = [train[i] for i in sorted(order[:held])]
        train = [train[i] for i in sorted(order[held:])]
        # Kept on disk so the evaluation after training scores the same unseen examples.
        config.output_dir.mkdir(parents=True, exist_ok=True)
        write_records(config.output_dir / HELD_OUT_FILE,
                      [records[i].data for i in sorted(order[:held])])
        callback.on_event("info", f"Held out {held} training examples for validation "
                          f"(validation_split {config.validation_split})")
    if not train:
        raise TrainingError(f"{config.training_file.name} has no examples",
                            "invalid_n_examples", "training_file")
    block = min(config.max_seq_length or min(context, 2048), context)
    if method == "pretrain":
        train = pack_documents(train, block)
        valid = pack_documents(valid, block) if valid else []
        return Data(train, valid)
    data = Data([_as_example(e) for e in train], [_as_example(e) for e in valid])
    return _truncate(data, block, callback) if config.max_seq_length else data


def _as_example(example):
    return example if isinstance(example, PreferencePair) else [example]


def _truncate(data: Data, length: int, callback) -> Data:
    """Over-long examples are cut from the end, with a warning, as OpenAI does."""
    count = 0

    def cut(segment: Tokenized) -> Tokenized:
        nonlocal count
        if len(segment) <= length:
            return segment
        count += 1
        return segment.truncated(length)

    def fix(example):
        if isinstance(example, PreferencePair):
            return PreferencePair(cut(example.chosen), cut(example.rejected))
        return [cut(s) for s in example]

    fixed = Data([fix(e) for e in data.train], [fix(e) for e in data.valid])
    if count:
        callback.on_event("warning", f"{count} sequences longer than {length} tokens were "
                          "truncated from the end", {"truncated": count})
    fixed.truncated = count
    return fixed


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def _validation_window(n: int, batch_size: int, step: int) -> list[int]:
    start = (step * batch_size) % n
    return [(start + k) % n for k in range(min(batch_size, n))]


def _segments(examples: list) -> list[Tokenized]:
    return [segment for example in examples for segment in example]


def _micro_batches(examples: list, accumulation: int, accelerator) -> list[list]:
    # At least one micro-batch per rank: a rank without one would never call backward and
    # DDP would wait for it forever.
    size = math.ceil(len(examples) / max(accumulation, accelerator.num_processes))
    chunks = [examples[i:i + size] for i in range(0, len(examples), size)]
    return chunks[accelerator.process_index::accelerator.num_processes]


# --- steps --------------------------------------------------------------------------------


def _sft_step(module, examples, pad, accelerator, accumulation):
    """Mean loss over every target token of the step, however the step is split."""
    all_segments = _segments(examples)
    total_targets = max(1, sum(sum(s.trained[1:]) for s in all_segments))
    loss_sum, correct, tokens = 0.0, 0, 0
    for chunk in _micro_batches(examples, accumulation, accelerator):
        batch = pack(_segments(chunk), pad).to(accelerator.device)
        log_probs, hits, _ = batch_log_probs(module, batch)
        # DDP averages gradients over processes; scaling by their number makes the result
        # the mean over the whole step's target tokens.
        accelerator.backward(-log_probs.sum() / total_targets * accelerator.num_processes)
        loss_sum += float(-log_probs.detach().sum())
        correct += int(hits.sum())
        tokens += batch.tokens
    stats = accelerator.reduce(torch.tensor([loss_sum, correct, tokens], dtype=torch.float64,
                                            device=accelerator.device), "sum")
    return float(stats[0]) / total_targets, float(stats[1]) / total_targets, int(stats[2])


def _pairs_log_probs(module, pairs: list[PreferencePair], pad, device):
    segments = [s for pair in pairs for s in (pair.chosen, pair.rejected)]
    batch = pack(segments, pad).to(device)
    log_probs, hits, owners = batch_log_probs(module, batch)
    sums = sequence_sums(log_probs, owners, len(segments))
    return sums[0::2], sums[1::2], batch.tokens


def _dpo_step(module, pairs, reference, plan, pad, accelerator, accumulation):
    loss_sum, wins, tokens = 0.0, 0, 0
    size = math.ceil(len(pairs) / max(accumulation, accelerator.num_processes))
    chunks = [(i, pairs[i:i + size]) for i in range(0, len(pairs), size)]
    for start, chunk in chunks[accelerator.process_index::accelerator.num_processes]:
        chosen, rejected, chunk_tokens = _pairs_log_probs(module, chunk, pad, accelerator.device)
        ref = reference[start:start + len(chunk)].to(accelerator.device)
        losses, margins = dpo_loss(chosen, rejected, ref[:, 0], ref[:, 1], plan.beta)
        accelerator.backward(losses.sum() / len(pairs) * accelerator.num_processes)
        loss_sum += float(losses.detach().sum())
        wins += int((margins > 0).sum())
        tokens += chunk_tokens
    stats = accelerator.reduce(torch.tensor([loss_sum, wins, tokens], dtype=torch.float64,
                                            device=accelerator.device), "sum")
    return float(stats[0]) / len(pairs), float(stats[1]) / len(pairs), int(stats[2])


@torch.no_grad()
def _reference_log_probs(module, data: Data, plan, pad, accelerator, config) -> dict:
    """Summed log-probabilities of chosen and rejected under the reference model, computed once
    before any update: the starting model (a previous stage's adapter included) or, with
    dpo_reference="base", the base with adapters switched off."""
    model = accelerator.unwrap_model(module).model
    module.eval()
    result = {}
    for name, pairs in (("train", data.train), ("valid", data.valid)):
        values = []
        for i in range(0, len(pairs), plan.batch_size):
            chunk = pairs[i:i + plan.batch_size]
            if config.dpo_reference == "base":
                with model.disable_adapter():
                    chosen, rejected, _ = _pairs_log_probs(module, chunk, pad, accelerator.device)
            else:
                chosen, rejected, _ = _pairs_log_probs(module, chunk, pad, accelerator.device)
            values.append(torch.stack([chosen, rejected], dim=1).float().cpu())
        result[name] = torch.cat(values) if values else torch.zeros((0, 2))
    module.train()
    return result


@torch.no_grad()
def _evaluate(module, examples, indices, references, split, plan, pad):
    """(loss, mean token accuracy) over `indices`; for DPO, (DPO loss, reward accuracy)."""
    module.eval()
    device = next(module.parameters()).device
    loss_sum, correct, count = 0.0, 0, 0
    for i in range(0, len(indices), plan.batch_size):
        chunk = indices[i:i + plan.batch_size]
        if references is not None:
            pairs = [examples[j] for j in chunk]
            chosen, rejected, _ = _pairs_log_probs(module, pairs, pad, device)
            ref = references[split][chunk].to(device)
            losses, margins = dpo_loss(chosen, rejected, ref[:, 0], ref[:, 1], plan.beta)
            loss_sum += float(losses.sum())
            correct += int((margins > 0).sum())
            count += len(chunk)
        else:
            batch = pack(_segments([examples[j] for j in chunk]), pad).to(device)
            log_probs, hits, _ = batch_log_probs(module, batch)
            loss_sum += float(-log_probs.sum())
            correct += int(hits.sum())
            count += batch.target_tokens
    module.train()
    return loss_sum / max(count, 1), correct / max(count, 1)


def _schedule(plan):
    """Linear warmup, then linear decay to zero at the last step."""
    def factor(step: int) -> float:
        if step < plan.warmup_steps:
            return (step + 1) / (plan.warmup_steps + 1)
        remaining = plan.total_steps - step
        return max(0.0, remaining / max(1, plan.total_steps - plan.warmup_steps))
    return factor


# --- validation-driven decisions ----------------------------------------------------------


def _watch_overfitting(progress: Progress, row: dict, callback) -> None:
    train_loss = progress.epoch_loss_sum / max(progress.epoch_steps, 1)
    valid_loss = row.get("full_valid_loss")
    previous = progress.previous_epoch
    if previous and valid_loss is not None and previous.get("valid") is not None:
        if train_loss < previous["train"] and valid_loss > previous["valid"]:
            callback.on_event(
                "warning",
                f"Possible overfitting at step {progress.step}: training loss fell "
                f"({previous['train']:.4f} -> {train_loss:.4f}) while validation loss rose "
                f"({previous['valid']:.4f} -> {valid_loss:.4f})",
                {"kind": "overfitting", "step": progress.step})
    progress.previous_epoch = {"train": train_loss, "valid": valid_loss}
    progress.epoch_loss_sum, progress.epoch_steps = 0.0, 0


def _early_stop(config: TrainConfig, progress: Progress, row: dict, callback) -> bool:
    loss = row.get("full_valid_loss")
    if loss is None:
        return False
    if progress.best_loss is None or loss < progress.best_loss:
        progress.best_loss, progress.best_step = loss, progress.step
        progress.evaluations_without_improvement = 0
        return False
    progress.evaluations_without_improvement += 1
    patience = config.early_stopping_patience
    if patience and progress.evaluations_without_improvement >= patience:
        callback.on_event("info", f"Early stopping at step {progress.step}: validation loss has "
                          f"not improved for {patience} evaluations; keeping step "
                          f"{progress.best_step} (valid loss {progress.best_loss:.4f})",
                          {"best_step": progress.best_step})
        return True
    return False


def _last_metrics(progress: Progress) -> dict:
    return dict(progress.history[-1]) if progress.history else {}


# --- provenance ---------------------------------------------------------------------------


def _manifest(config, trainable: TrainableModel, plan, precision, progress, status,
              stopped_early, data: Data) -> dict:
    parameters = sum(p.numel() for p in trainable.model.parameters())
    # Forward 2N FLOPs per token, backward 2N for activations, plus 2N for weight gradients
    # when every weight trains; LoRA skips the last (its own matrices are negligible).
    per_token = (6 if config.fine_tuning == "full" else 4) * parameters
    return {
        "status": status,
        "base_model": trainable.base_model,
        "base_model_folder": trainable.base_folder,
        "base_model_weights_sha256": weights_hash(trainable.base_folder),
        "started_from": config.model if trainable.started_from_adapter else None,
        "training_file": str(config.training_file),
        "training_file_sha256": sha256_file(config.training_file),
        "validation_file": str(config.validation_file) if config.validation_file else None,
        "validation_file_sha256": sha256_file(config.validation_file)
        if config.validation_file else None,
        "held_out_file": str(config.output_dir / HELD_OUT_FILE)
        if (config.output_dir / HELD_OUT_FILE).is_file() and not config.validation_file else None,
        "method": config.method,
        "fine_tuning": config.fine_tuning,
        "hardware": machine_id(),
        "precision": precision,
        "seed": config.seed,
        "config": config.model_dump(mode="json"),
        "hyperparameters": plan.as_dict(),
        "auto_chose": plan.auto,
        "n_train_examples": len(data.train),
        "n_validation_examples": len(data.valid),
        "steps": progress.step,
        "trained_tokens": progress.trained_tokens,
        "flops": per_token * progress.trained_tokens,
        "wall_time_seconds": round(progress.elapsed, 3),
        "early_stopped": stopped_early,
        "best_step": progress.best_step,
        "versions": library_versions(),
    }

