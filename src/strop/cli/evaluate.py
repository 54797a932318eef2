"""`strop eval`, `strop audit verify|log` and `strop report`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import typer
from rich.table import Table

from strop import audit
from strop.cli.app import (EXIT_PROBLEMS, app, console, errors, fail, load_settings,
                           progress_printer)

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


def print_evaluation(result) -> None:
    from strop.reports.evaluation_table import format_delta, format_estimate

    table = Table(title=f"{result.tuned.get('name')} vs {result.base.get('name')}",
                  show_lines=False)
    for column in ("group", "metric"):
        table.add_column(column, no_wrap=True)
    for column in ("base [95% CI]", "tuned [95% CI]", "delta [95% CI]", "retention", "n"):
        table.add_column(column)
    for comparison in result.comparisons:
        style = "red" if comparison.significant_drop else (
            "green" if comparison.significant_gain else None)
        table.add_row(comparison.group, comparison.metric, format_estimate(comparison.base),
                      format_estimate(comparison.tuned), format_delta(comparison),
                      format_estimate(comparison.retention) if comparison.retention else "-",
                      str(comparison.tuned.n), style=style)
    console.print(table)
    for note in result.notes:
        errors.print(f"[yellow]note:[/] {note}", highlight=False)


@app.command("eval")
def evaluate_command(
    model: str = typer.Argument(..., help="ft: name, job output folder, adapter or model "
                                          "folder; with --endpoint, the model's name there"),
    base: str = typer.Option(None, "--base", help="base model (default: the adapter's own)"),
    data: Path = typer.Option(None, "--data", help="held-out chat JSONL for task metrics"),
    endpoint: str = typer.Option(None, "--endpoint",
                                 help="OpenAI-compatible base URL, e.g. http://host:8000/v1"),
    api_key: str = typer.Option(None, "--api-key", envvar="OPENAI_API_KEY"),
    suite: list[str] = typer.Option(["retention", "hallucination"], "--suite",
                                    help="shipped suite name or JSONL path (repeatable)"),
    limit: int = typer.Option(None, "--limit", min=1, help="items per suite (sampled evenly)"),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1),
    dtype: str = typer.Option(None, "--dtype", help="float32, bfloat16 or float16 (default: "
                                                     "the serving precision, serving.dtype)"),
    output: Path = typer.Option(None, "--output", "-o",
                                help="where to write the JSON (default: beside the job)"),
    show_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Evaluate a tuned model against its base: task metrics, retention, hallucination."""
    from strop.evaluate import EndpointModel, SuiteError, evaluate_models, plot_comparison
    from strop.evaluate.tuned import evaluate_tuned_model
    from strop.models import ModelError
    from strop.serving import ModelNotFoundError, ServingError

    paths = None
    try:
        if endpoint:
            if not base:
                raise fail("with --endpoint, name the base model on that endpoint with --base")
            result = evaluate_models(
                EndpointModel(endpoint, base, api_key), EndpointModel(endpoint, model, api_key),
                data_path=data, suites=suite, max_new_tokens=max_new_tokens, limit=limit,
                progress=progress_printer)
        else:
            result, paths = evaluate_tuned_model(
                load_settings(), model, base, data_path=data, suites=suite, limit=limit,
                max_new_tokens=max_new_tokens, dtype=dtype, progress=progress_printer,
                save=False)
    except (ModelError, ModelNotFoundError, SuiteError, ValueError, FileNotFoundError) as exc:
        raise fail(str(exc))
    except ServingError as exc:
        raise fail(exc.message)
    if show_json:
        console.print_json(json.dumps(result.to_dict()))
    else:
        print_evaluation(result)
    destination = output or (paths.evaluation_path if paths else None)
    if destination is not None:
        result.save(destination)
        chart = plot_comparison(result, destination.with_suffix(".png"))
        errors.print(f"[dim]wrote {destination} and {chart}[/]", highlight=False)
    payload = json.dumps(result.to_dict(), sort_keys=True).encode()
    load_settings().audit_log.append(
        "model.evaluated", actor="cli", objects={"model": model},
        hashes={"evaluation": "sha256:" + hashlib.sha256(payload).hexdigest()},
        details={"base": result.base.get("name"), "settings": result.settings,
                 "significant_drops": [f"{c.group}/{c.metric}" for c in result.significant_drops],
                 "output": str(destination) if destination else None})


@audit_app.command("verify")
def audit_verify(
    anchor: str = typer.Option(None, "--anchor", help="SEQ:HASH saved earlier, proves the "
                                                      "prefix up to it unchanged"),
    path: Path = typer.Option(None, "--path", help="log file (default: the home's)"),
) -> None:
    """Check the hash chain, the head anchor and (with the audit key set) every HMAC."""
    log = load_settings().audit_log
    try:
        result = audit.verify(path or log.path, anchor=anchor, key=log.key)
    except audit.AuditError as exc:
        raise fail(str(exc))
    if result.ok:
        head = result.head
        console.print(f"[green]ok[/]: {result.records} records intact"
                      + (f"; head {head['seq']}:{head['hash']} (save it elsewhere and pass "
                         "it to --anchor later)" if head else ""), highlight=False,
                      soft_wrap=True)
        return
    console.print(f"[red]{len(result.problems)} problem(s)[/] in {result.records} records:")
    for problem in result.problems:
        console.print(f"  - {problem}", highlight=False, markup=False)
    raise typer.Exit(EXIT_PROBLEMS)


@audit_app.command("log")
def audit_log(
    object_id: str = typer.Option(None, "--object", help="only records naming this id"),
    last: int = typer.Option(None, "--last", min=1, help="only the newest N records"),
    show_json: bool = typer.Option(False, "--json", help="one JSON record per line"),
) -> None:
    """Show the audit log, oldest first."""
    found = load_settings().audit_log.records(object_id)
    if last:
        found = found[-last:]
    if show_json:
        for record in found:
            console.print(json.dumps(record), highlight=False, markup=False, soft_wrap=True)
        return
    table = Table()
    for column in ("#", "time", "actor", "org", "action", "objects"):
        table.add_column(column)
    for record in found:
        objects = ", ".join(f"{k}={v}" for k, v in (record.get("objects") or {}).items())
        table.add_row(str(record.get("seq")), str(record.get("time", ""))[:19],
                      str(record.get("actor") or "-"), str(record.get("organization") or "-"),
                      str(record.get("action")), objects)
    console.print(table, emoji=False)


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
