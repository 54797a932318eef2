"""The root Typer application and the console every verb prints through."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

# strop draws its own progress; the libraries' per-load bars and deprecation notices about their
# own internals are noise to a user (the environment variable reaches child processes too).
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")

app = typer.Typer(
    name="strop",
    help="Self-hosted fine-tuning for open-weight language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output (logs, CI) gets a width that fits the tables instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() else 140)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 140)

# Exit statuses shared by every verb: 0 clean, 1 problems found, 2 usage error.
EXIT_PROBLEMS = 1
EXIT_USAGE = 2

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object instead of tables.")


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print `message` as an error and return the Exit to raise."""
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, emoji=False)
    return typer.Exit(code)


def require_file(path: Path) -> None:
    if not path.is_file():
        raise fail(f"No such file: {path}")


def print_json(payload: dict) -> None:
    console.print_json(json.dumps(payload, default=str))


def progress_printer(message: str) -> None:
    errors.print(f"[dim]{message}[/]", highlight=False)


def load_settings(**sections):
    """The effective settings (see strop.settings), a readable error if they cannot be read."""
    from strop.settings import Settings, SettingsError

    try:
        return Settings.load(**sections)
    except SettingsError as exc:
        raise fail(str(exc))


def open_store(settings=None):
    """The settings' database, or a readable error (unreachable, or an old schema) and exit 1."""
    from strop.store import Store
    from strop.store.db import StoreUnavailable
    from strop.store.schema import SchemaOutdated

    settings = settings or load_settings()
    try:
        return Store(settings.database_url)
    except (StoreUnavailable, SchemaOutdated) as exc:
        raise fail(str(exc), code=1)
