"""`strop models ...`: what base models are available and in what state."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from strop.cli.app import app, console
from strop.models import available, describe

models_app = typer.Typer(help="Base and fine-tuned models.", no_args_is_help=True)
app.add_typer(models_app, name="models")


def _human_count(count: int | None) -> str:
    if count is None:
        return "?"
    return f"{count / 1e9:.2f}B" if count >= 1e9 else f"{count / 1e6:.1f}M"


@models_app.command("list")
def list_models() -> None:
    """Show available base models with size, context length, dtype and cache state."""
    table = Table("model", "kind", "parameters", "context", "dtype", "cached", "location")
    for name in available():
        info = describe(name)
        table.add_row(
            name, info["kind"], _human_count(info["parameters"]),
            str(info["context_length"] or "?"), str(info["dtype"] or "?"),
            "yes" if info["cached"] else "no (converted on first use)", info["location"],
        )
    console.print(table)


@models_app.command("export")
def export(
    model: str = typer.Argument(..., help="a fine-tuned model name (ft:...) or checkpoint"),
    output: Path = typer.Option(..., "-o", "--output", help="folder to write (new or empty)"),
    merged: bool = typer.Option(False, "--merged",
                                help="merge the adapter into the base weights (standalone model)"),
) -> None:
    """Write a tuned model's weights: its adapter, or with --merged a plain model folder."""
    from strop.serving.resolver import ModelNotFoundError
    from strop.store.export import export_tuned_model

    from strop.cli.app import EXIT_USAGE, errors, load_settings, open_store

    def fail(message: str) -> typer.Exit:
        # emoji=False: rich would turn the ":x:" inside an ft: name into an emoji.
        errors.print(f"[bold red]error:[/] {message}", highlight=False, emoji=False)
        return typer.Exit(EXIT_USAGE)

    try:
        settings = load_settings()
        written = export_tuned_model(open_store(settings), model, output, merged=merged)
    except ModelNotFoundError:
        raise fail(f"no fine-tuned model named '{model}' (see `strop models list` or the "
                   "server's /v1/models)")
    except (FileExistsError, FileNotFoundError) as exc:
        raise fail(str(exc))
    settings.audit_log.append("model.exported", actor="cli", objects={"model": model},
                              details={"merged": merged, "destination": str(written)})
    console.print(f"Wrote {'merged model' if merged else 'adapter'} of {model} to {written}",
                  emoji=False, highlight=False)
