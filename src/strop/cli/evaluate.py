"""`strop eval`: a tuned model against its base."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import typer
from rich.table import Table

from strop.cli.app import app, console, errors, fail, load_settings, progress_printer


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
