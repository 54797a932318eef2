"""`strop models ...`: what base models are available and in what state."""

from __future__ import annotations

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
