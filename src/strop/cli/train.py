"""`strop train`: fine-tune a model on a JSONL file, with a progress bar (tokens/s, ETA).

Ctrl-C once pauses (a checkpoint is written; `--resume DIR` continues exactly where it
stopped); twice cancels.
"""

from __future__ import annotations

import signal
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from strop.cli.app import app, console, errors, fail
from strop.models import DEFAULT_MODEL
from strop.train import Hyperparameters, TrainConfig, TrainingError, run_training
from strop.train.hyperparameters import check


def _auto_int(value: str, name: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise fail(f"--{name} must be a whole number or 'auto', got '{value}'") from None


def _auto_float(value: str, name: str) -> float | str:
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise fail(f"--{name} must be a number or 'auto', got '{value}'") from None


class ProgressCallback:
    """Draws the bar, prints events and checkpoints, turns Ctrl-C into pause then cancel."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.task = progress.add_task("training", total=None, loss="", rate="")
        self.request: str | None = None

    def interrupt(self, signum, frame) -> None:
        self.request = "cancel" if self.request else "pause"
        errors.print(f"[yellow]{self.request} requested; finishing the current step[/]")

    def on_event(self, level, message, data=None) -> None:
        style = {"warning": "yellow", "error": "red"}.get(level, "dim")
        self.progress.console.print(f"[{style}]{message}[/]", highlight=False)

    def on_metrics(self, metrics: dict) -> None:
        loss = f"loss {metrics['train_loss']:.4f}"
        if metrics.get("valid_loss") is not None:
            loss += f"  valid {metrics['valid_loss']:.4f}"
        self.progress.update(self.task, total=metrics["total_steps"], completed=metrics["step"],
                             loss=loss, rate=f"{metrics['tokens_per_second']:.0f} tok/s")

    def on_checkpoint(self, step, path, metrics) -> None:
        self.progress.console.print(f"[dim]checkpoint step {step}: {path}[/]", highlight=False)

    def should_stop(self):
        return self.request


@app.command()
def train(
    training_file: Path = typer.Argument(..., help="JSONL training file."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m",
                              help="Base model name or folder, or a tuned model's adapter folder."),
    output_dir: Path = typer.Option(..., "--output", "-o", help="Folder for the run's outputs."),
    validation_file: Path = typer.Option(None, "--validation-file"),
    method: str = typer.Option("supervised", "--method",
                               help="supervised, dpo or pretrain."),
    full: bool = typer.Option(False, "--full", help="Train every weight instead of LoRA."),
    epochs: str = typer.Option("auto", "--epochs", help="1-50 or auto."),
    batch_size: str = typer.Option("auto", "--batch-size", help="1-256 or auto."),
    lr_multiplier: str = typer.Option("auto", "--lr-multiplier", help="> 0 or auto."),
    beta: str = typer.Option("auto", "--beta", help="DPO only: (0, 2] or auto."),
    seed: int = typer.Option(42, "--seed"),
    lora_rank: int = typer.Option(16, "--lora-rank"),
    lora_alpha: int = typer.Option(32, "--lora-alpha"),
    lora_dropout: float = typer.Option(0.0, "--lora-dropout"),
    max_seq_length: int = typer.Option(None, "--max-seq-length"),
    eval_interval: int = typer.Option(None, "--eval-interval"),
    early_stopping_patience: int = typer.Option(None, "--early-stopping-patience"),
    precision: str = typer.Option("auto", "--precision", help="auto, bf16 or fp32."),
    resume: Path = typer.Option(None, "--resume", help="Run folder or checkpoint to resume."),
    merge: bool = typer.Option(False, "--merge", help="Also write a merged full model."),
) -> None:
    """Fine-tune a model. Prints where the adapter, metrics and manifest went."""
    if method not in ("supervised", "dpo", "pretrain"):
        raise fail(f"--method must be supervised, dpo or pretrain, got '{method}'")
    if precision not in ("auto", "bf16", "fp32"):
        raise fail(f"--precision must be auto, bf16 or fp32, got '{precision}'")
    config = TrainConfig(
        method=method, model=model, training_file=training_file,
        validation_file=validation_file, output_dir=output_dir, seed=seed,
        hyperparameters=Hyperparameters(
            n_epochs=_auto_int(epochs, "epochs"), batch_size=_auto_int(batch_size, "batch-size"),
            learning_rate_multiplier=_auto_float(lr_multiplier, "lr-multiplier"),
            beta=_auto_float(beta, "beta")),
        fine_tuning="full" if full else "lora", lora_rank=lora_rank, lora_alpha=lora_alpha,
        lora_dropout=lora_dropout, max_seq_length=max_seq_length, eval_interval=eval_interval,
        early_stopping_patience=early_stopping_patience, precision=precision,
        resume_from=resume, merge=merge)
    try:
        check(config)  # refuse bad settings before drawing a progress bar
    except TrainingError as exc:
        raise fail(f"{exc.message}" + (f" (param: {exc.param})" if exc.param else ""))
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
               TextColumn("{task.completed}/{task.total} steps"), TextColumn("{task.fields[rate]}"),
               TextColumn("{task.fields[loss]}"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        callback = ProgressCallback(progress)
        previous = signal.signal(signal.SIGINT, callback.interrupt)
        try:
            result = run_training(config, callback)
        except TrainingError as exc:
            raise fail(f"{exc.message}" + (f" (param: {exc.param})" if exc.param else ""))
        finally:
            signal.signal(signal.SIGINT, previous)
    if result.status == "paused":
        console.print(f"Paused at step {result.steps}/{result.total_steps}. Resume with: "
                      f"strop train {training_file} -m {model} -o {output_dir} --resume {output_dir}")
        return
    if result.status == "cancelled":
        console.print(f"Cancelled at step {result.steps}/{result.total_steps}.")
        raise typer.Exit(1)
    metrics = result.final_metrics
    summary = f"train loss {metrics.get('train_loss', float('nan')):.4f}"
    if metrics.get("full_valid_loss") is not None:
        summary += f", validation loss {metrics['full_valid_loss']:.4f}"
    console.print(f"Done: {result.steps} steps, {result.trained_tokens} tokens, {summary}")
    console.print(f"  model:    {result.output_dir}   (chat: strop chat -m {result.output_dir})")
    console.print(f"  metrics:  {result.metrics_csv}")
    console.print(f"  manifest: {result.manifest}")
    if result.merged_dir:
        console.print(f"  merged:   {result.merged_dir}")
