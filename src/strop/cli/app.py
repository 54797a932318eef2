"""The root Typer application and the console every verb prints through."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="strop",
    help="Self-hosted fine-tuning for open-weight language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)

# Exit statuses shared by every verb: 0 clean, 1 problems found, 2 usage error.
EXIT_PROBLEMS = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print `message` as an error and return the Exit to raise."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def progress_printer(message: str) -> None:
    errors.print(f"[dim]{message}[/]", highlight=False)
