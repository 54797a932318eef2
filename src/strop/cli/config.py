"""`strop config show`: the effective settings and where each came from."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from strop.cli.app import app, console, load_settings

config_app = typer.Typer(help="strop's settings (environment > config file > defaults).",
                         no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def show(show_json: bool = typer.Option(False, "--json", help="one JSON object")) -> None:
    """Print every setting's effective value and its source (secrets hidden)."""
    rows = load_settings().effective()
    if show_json:
        console.print_json(json.dumps({name: {"value": value, "source": source}
                                       for name, value, source in rows}))
        return
    table = Table("setting", "value", "source")
    for row in rows:
        table.add_row(*row)
    console.print(table, highlight=False)


@config_app.command("reference")
def reference() -> None:
    """Print the Markdown table of every setting (docs/settings.md)."""
    from strop.settings import reference as settings_reference

    print(settings_reference(), end="")
