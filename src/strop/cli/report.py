"""`strop report`: the auditor's package for one tuned model (technical documentation after
Annex IV and a model card)."""

from __future__ import annotations

from pathlib import Path

import typer

from strop.cli.app import app, console, errors, fail, load_settings


@app.command("report")
def report_command(
    model: str = typer.Argument(..., help="ft: name, job output folder or adapter folder"),
    out: Path = typer.Option(..., "--output", "-o", help="folder for the report"),
    evaluation: Path = typer.Option(None, "--evaluation", help="evaluation JSON (default: "
                                                               "the job's evaluation.json)"),
    data_report: Path = typer.Option(None, "--data-report",
                                     help="JSON from `strop data clean` (PII counts, dupes)"),
) -> None:
    """Write a technical report (Markdown, HTML, charts) and a model card for a tuned model."""
    from strop.reports.auditor_package import ReportError, write_auditor_package
    from strop.serving import ModelNotFoundError

    try:
        report = write_auditor_package(load_settings(), model, out, evaluation, data_report)
    except (ModelNotFoundError, ReportError) as exc:
        raise fail(str(exc))
    if not report.evaluated:
        errors.print(f"[yellow]note:[/] no evaluation found for {model}; run `strop eval "
                     f"{model}` first for sections 2.4 and 3", highlight=False)
    console.print(f"wrote {report.markdown}, {report.html} and the model card "
                  f"{report.model_card}", highlight=False, emoji=False)
