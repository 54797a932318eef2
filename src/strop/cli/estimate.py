"""`strop estimate`: what a training file will cost before it is trained, on OpenAI's price
list and on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from strop.cli.app import (EXIT_PROBLEMS, EXIT_USAGE, JSON_OPTION, app, console, fail,
                           print_json, progress_printer, require_file)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@app.command("estimate")
def estimate_command(
    file: Path = typer.Argument(..., help="JSONL training file"),
    model: str = typer.Option("smollm2-135m-instruct", "--model", "-m", help="base model"),
    epochs: str = typer.Option("auto", "--epochs", help="1-50 or auto (OpenAI's rule)"),
    prices: Optional[Path] = typer.Option(None, "--prices", help="price table JSON to use"),
    fine_tuning: str = typer.Option("lora", "--fine-tuning", help="lora or full"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Billed tokens and cost on OpenAI's price list; FLOPs and wall time on this machine."""
    from strop.data.records import DataFileError
    from strop.estimate import EstimateError, estimate
    from strop.models import ModelError

    require_file(file)
    try:
        result = estimate(file, model, epochs if epochs == "auto" else epochs, prices,
                          fine_tuning, progress=None if as_json else progress_printer)
    except DataFileError as exc:
        raise fail(str(exc), EXIT_PROBLEMS)
    except (EstimateError, ModelError) as exc:
        raise fail(str(exc), EXIT_USAGE)
    if as_json:
        print_json(result.to_dict())
        return
    print_estimate(result)


def print_estimate(result) -> None:
    console.print(f"{result.examples:,} {result.format} examples x {result.epochs} epochs"
                  f"{' (auto)' if result.epochs_auto else ''} = "
                  f"[bold]{result.billed_tokens:,}[/] billed tokens "
                  f"({result.tokens_per_epoch:,} per epoch, "
                  f"{result.trained_tokens_per_epoch:,} of them trained)")
    table = Table("OpenAI model", f"training ({result.currency})", "basis",
                  "inference in / out per 1M", title="If trained on OpenAI")
    for price in result.prices:
        cost = f"{price.training_cost:,.2f}" if price.training_cost is not None else "per hour"
        inference = price.inference
        table.add_row(price.label, cost, price.basis,
                      f"{inference.get('input_per_million', '?')} / "
                      f"{inference.get('output_per_million', '?')}")
    console.print(table)
    if result.training_flops is not None:
        console.print(f"Local ({result.model}, {result.parameters / 1e6:.0f}M parameters, "
                      f"{result.fine_tuning}): {result.training_flops:.2e} FLOPs. "
                      f"[dim]{result.flops_note}[/]")
    if result.wall_seconds is not None:
        console.print(f"Predicted wall time here: [bold]{_duration(result.wall_seconds)}[/] "
                      f"[dim]({result.wall_note})[/]")
    else:
        console.print(f"[yellow]{result.wall_note}[/]")
