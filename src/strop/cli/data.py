"""`strop data check|clean|split`: thin wrappers over strop.data."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from strop.cli.app import (EXIT_PROBLEMS, JSON_OPTION, app, console, errors, fail, print_json,
                           progress_printer, require_file)

data_app = typer.Typer(help="Check, clean and split training files.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@contextmanager
def _progress_bar(enabled: bool):
    """A callback(stage, done, total) drawing a progress bar on stderr (nothing with --json)."""
    if not enabled:
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=errors, transient=True) as bar:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total or None)
            bar.update(tasks[stage], completed=done, total=total or None)

        yield update


def _problems_table(title: str, problems: list, style: str) -> Table:
    table = Table("line", "check", "problem", "fix", title=title, title_style=style,
                  show_lines=False, expand=True)
    for problem in problems:
        table.add_row(str(problem.line or "-"), problem.check or problem.code, problem.message,
                      problem.hint)
    return table


def _stats_table(stats: dict) -> Table:
    table = Table("tokens per example", "min", "p5", "median", "p95", "max", title=(
        f"{stats['examples']:,} {stats['format']} examples - {stats['tokens']['total']:,} tokens "
        f"({stats['tokens']['prompt']:,} prompt, {stats['tokens']['trained']:,} trained)"
        + ("" if stats["exact"] else f", +/- {stats['tokens']['total_margin_95']:,} from a sample of "
                                     f"{stats['counted_examples']:,}; --exact counts all")))
    for name, dist in (("total", stats["per_example"]["total"]),
                       ("trained", stats["per_example"]["trained"]),
                       ("messages", stats["messages_per_example"])):
        table.add_row(name, *(f"{dist[k]:g}" for k in ("min", "p5", "median", "p95", "max")))
    return table


@data_app.command("check")
def check(
    file: Path = typer.Argument(..., help="JSONL training file"),
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="base model whose tokenizer counts tokens "
                                             "(default: the embedded model)"),
    no_tokens: bool = typer.Option(False, "--no-tokens",
                                   help="skip token statistics (no tokenizer is loaded)"),
    exact: bool = typer.Option(False, "--exact",
                               help="count every example even in very large files"),
    near_duplicates: float = typer.Option(0.85, "--near-duplicates", min=0.01, max=1.0,
                                          help="Jaccard threshold for near-duplicates"),
    max_problems: int = typer.Option(100, "--max-problems", min=1, help="errors listed at most"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Validate a training file: every problem with line and fix, token statistics, readiness."""
    from strop.data.validate import validate_file

    require_file(file)
    tokenizer = context = None
    if not no_tokens:
        from strop.data.tokenizer import load_tokenizer
        from strop.models import ModelError

        try:
            tokenizer, context = load_tokenizer(model, None if as_json else progress_printer)
        except ModelError as exc:
            raise fail(str(exc))
    with _progress_bar(not as_json) as progress:
        report = validate_file(file, tokenizer, context, max_problems,
                               near_duplicate_threshold=near_duplicates, exact_counts=exact,
                               progress=progress)
    if as_json:
        print_json(report.to_dict())
    else:
        print_check(file, report)
    if not report.ok:
        raise typer.Exit(EXIT_PROBLEMS)


def print_check(file: Path, report) -> None:
    kind = report.format or "unrecognised"
    if report.errors:
        console.print(_problems_table(f"{len(report.errors) + report.errors_not_shown} errors",
                                      report.errors, "bold red"))
        if report.errors_not_shown:
            console.print(f"[red]... and {report.errors_not_shown} more errors not listed "
                          "(raise --max-problems to see them).[/]")
    if report.warnings:
        console.print(_problems_table(f"{len(report.warnings)} warnings", report.warnings,
                                      "bold yellow"))
    if report.stats:
        console.print(_stats_table(report.stats))
        for advice in report.stats["readiness"]:
            colour = {"ok": "green", "info": "cyan"}.get(advice["level"], "yellow")
            console.print(f"[{colour}]{advice['level']}:[/] {advice['message']}")
    verdict = "[green]valid[/]" if report.ok else "[red]not valid[/]"
    console.print(f"{file}: {report.n_examples} lines, {kind} format, {verdict}")
    console.print("Personal data is not scanned by check: `strop data clean --pii report` finds "
                  "it (names and street addresses only with --ner and a spaCy pipeline).")


@data_app.command("clean")
def clean(
    file: Path = typer.Argument(..., help="JSONL training file (never modified)"),
    output: Path = typer.Option(..., "--output", "-o", help="where to write the cleaned file"),
    pii: str = typer.Option("mask", "--pii",
                            help="report | mask | pseudonymize | hash | off"),
    near_duplicates: float = typer.Option(0.85, "--near-duplicates", min=0.01, max=1.0,
                                          help="Jaccard threshold for near-duplicates"),
    no_dedupe: bool = typer.Option(False, "--no-dedupe", help="keep duplicate examples"),
    ner: bool = typer.Option(False, "--ner",
                             help="also find names and places (needs a spaCy pipeline "
                                  "installed; spaCy's are not on the package index)"),
    report_path: Optional[Path] = typer.Option(None, "--report",
                                               help="JSON report path (default OUT.report.json)"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Write a cleaned copy: duplicates removed, personal data redacted, plus a JSON report."""
    from strop.data.clean import clean_file
    from strop.data.pii import POLICIES
    from strop.data.records import DataFileError

    require_file(file)
    if pii not in POLICIES + ("off",):
        raise fail(f"--pii must be one of {', '.join(POLICIES)}, off; got {pii!r}")
    with _progress_bar(not as_json) as progress:
        try:
            result = clean_file(file, output, pii=None if pii == "off" else pii,
                                near_duplicate_threshold=near_duplicates, dedupe=not no_dedupe,
                                report_path=report_path, ner=ner, progress=progress)
        except DataFileError as exc:
            raise fail(str(exc), EXIT_PROBLEMS)
        except ValueError as exc:
            raise fail(str(exc))
    if as_json:
        print_json(result.to_dict())
        return
    print_clean(result)


def print_clean(result) -> None:
    table = Table("", "count", title=f"{result.input_path} -> {result.output_path}")
    table.add_row("examples in", f"{result.examples_in:,}")
    table.add_row("exact duplicates removed", f"{result.exact_duplicates:,}")
    table.add_row("near duplicates removed", f"{result.near_duplicates:,}")
    for entity, count in sorted(result.pii_counts.items()):
        table.add_row(f"{entity} ({'found' if result.pii_policy == 'report' else result.pii_policy})",
                      f"{count:,} in {len(result.pii_lines[entity]):,} lines")
    table.add_row("examples out", f"{result.examples_out:,}")
    console.print(table)
    for dup in result.duplicates[:5]:
        console.print(f"  line {dup['line']} {dup['kind']}-duplicates line {dup['of_line']}"
                      + (f" (similarity {dup['similarity']})" if dup["kind"] == "near" else ""))
    if len(result.duplicates) > 5:
        console.print(f"  ... {len(result.duplicates) - 5} more in the report")
    if result.pii_notice:
        console.print(f"[yellow]{result.pii_notice}[/]")
    console.print(f"report: {result.report_path} ({result.seconds:.1f} s)")


@data_app.command("split")
def split(
    file: Path = typer.Argument(..., help="JSONL training file"),
    validation: float = typer.Option(0.1, "--validation",
                                     help="fraction (0-1) or number (>= 1) held out"),
    seed: int = typer.Option(0, "--seed", help="same seed, same split"),
    train_out: Optional[Path] = typer.Option(None, "--train-out",
                                             help="default: FILE.train.jsonl"),
    validation_out: Optional[Path] = typer.Option(None, "--validation-out",
                                                  help="default: FILE.validation.jsonl"),
    near_duplicates: float = typer.Option(0.85, "--near-duplicates", min=0.01, max=1.0),
    as_json: bool = JSON_OPTION,
) -> None:
    """Split into training and validation files; near-duplicates stay on one side."""
    from strop.data.records import DataFileError
    from strop.data.split import split_file

    require_file(file)
    stem = file.with_suffix("") if file.suffix == ".jsonl" else file
    train_out = train_out or Path(f"{stem}.train.jsonl")
    validation_out = validation_out or Path(f"{stem}.validation.jsonl")
    amount: float | int = int(validation) if validation >= 1 else validation
    try:
        result = split_file(file, train_out, validation_out, amount, seed, near_duplicates)
    except DataFileError as exc:
        raise fail(str(exc), EXIT_PROBLEMS)
    except ValueError as exc:
        raise fail(str(exc))
    if as_json:
        print_json(result.to_dict())
        return
    console.print(f"{result.train_examples:,} training examples -> {result.train_path}")
    console.print(f"{result.validation_examples:,} validation examples -> "
                  f"{result.validation_path}")
    if result.groups_kept_together:
        console.print(f"{result.groups_kept_together} groups of duplicates kept on one side")
