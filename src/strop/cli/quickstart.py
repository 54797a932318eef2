"""`strop quickstart`: the whole lifecycle on the embedded model, printed as it happens."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from strop.cli.app import app, console, fail
from strop.quickstart import QuickstartOptions, Reporter, run


def _shown(answer: str, limit: int = 600) -> str:
    """An answer as it reads: blank runs collapsed (untrained models emit many), long ones cut."""
    text = "\n".join(line for line in answer.strip().splitlines() if line.strip()) or "(empty)"
    return text if len(text) <= limit else text[:limit] + " [...]"


class ConsoleReporter(Reporter):
    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.task = None

    def stage(self, number: int, title: str) -> None:
        self._close_progress()
        console.rule(f"[bold]{number}/7  {title}", align="left")

    def data_checked(self, path: Path, report) -> None:
        from strop.cli.data import print_check

        print_check(path, report)

    def data_cleaned(self, report) -> None:
        from strop.cli.data import print_clean

        print_clean(report)

    def estimated(self, estimate) -> None:
        from strop.cli.estimate import print_estimate

        print_estimate(estimate)

    def note(self, message: str) -> None:
        style = "yellow" if message.startswith(("warn", "error")) else "dim"
        console.print(f"[{style}]{message}[/]", highlight=False)

    def training_progress(self, step: int, total: int, metrics: dict) -> None:
        losses = f"train loss {metrics.get('train_loss') or 0:.3f}"
        if metrics.get("valid_loss") is not None:
            losses += f"  valid loss {metrics['valid_loss']:.3f}"
        if metrics.get("tokens_per_second"):
            losses += f"  {metrics['tokens_per_second']:.0f} trained tok/s"
        if not console.is_terminal:  # a log gets a line per tenth of the run instead of a bar
            if step == total or step % max(1, total // 10) == 0:
                console.print(f"step {step}/{total}  {losses}")
            return
        if self.progress is None:
            self.progress = Progress(
                TextColumn("training"), BarColumn(), TextColumn("step {task.completed}/{task.total}"),
                TextColumn("{task.fields[losses]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=console)
            self.progress.start()
            self.task = self.progress.add_task("train", total=total or None, losses="")
        self.progress.update(self.task, completed=step, total=total or None, losses=losses)

    def _close_progress(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def evaluated(self, evaluation: dict) -> None:
        from strop.cli.evaluate import print_evaluation
        from strop.evaluate import as_result

        if evaluation.get("status") != "succeeded":
            console.print(f"[red]evaluation {evaluation.get('status')}: "
                          f"{evaluation.get('error') or ''}[/]")
            return
        print_evaluation(as_result(evaluation["result"]))

    def reported(self, report) -> None:
        charts = sorted(str(path) for path in report.markdown.parent.glob("*.png"))
        console.print(f"Report for auditors: {report.html} (Markdown: {report.markdown}); "
                      f"model card: {report.model_card}", highlight=False)
        if charts:
            console.print("Charts: " + ", ".join(charts), highlight=False)

    def compared(self, rows: list[dict], voice_base: float, voice_tuned: float) -> None:
        for row in rows:
            table = Table("base model", "tuned model", title=row["question"], show_lines=True,
                          expand=True)
            table.add_row(_shown(row["base"]), _shown(row["tuned"]))
            console.print(table)
        console.print(f"Brand voice used: base [bold]{voice_base:.0%}[/] of answers, "
                      f"tuned [bold]{voice_tuned:.0%}[/].")


@app.command()
def quickstart(
    model: str = typer.Option("smollm2-135m-instruct", "--model", "-m"),
    epochs: int = typer.Option(1, "--epochs", min=1, max=50),
    eval_limit: int = typer.Option(20, "--eval-limit", min=1,
                                   help="items per evaluation suite (the full suites: strop eval)"),
    base_url: str = typer.Option(None, "--base-url",
                                 help="use a running strop service instead of starting one"),
) -> None:
    """Check, clean, estimate, fine-tune, evaluate and chat: the whole lifecycle (~10 min)."""
    console.print("[bold]strop quickstart[/]: a LoRA fine-tune of the embedded model on a "
                  "support dataset, through the OpenAI API. About 10 minutes on 2 CPU cores.")
    started = time.perf_counter()
    options = QuickstartOptions(model=model, n_epochs=epochs, eval_limit=eval_limit,
                                base_url=base_url)
    reporter = ConsoleReporter()
    try:
        result = run(options, reporter)
    except RuntimeError as exc:
        raise fail(str(exc), 1)
    finally:
        reporter._close_progress()
    console.rule("[bold]done", align="left")
    timings = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in
                        result.stage_seconds.items())
    console.print(f"Tuned model: [bold]{result.fine_tuned_model}[/] (job {result.job_id})")
    console.print(f"Wall time {time.perf_counter() - started:.0f} s: {timings}")
    console.print(f"Next: `strop chat -m {result.fine_tuned_model}` to talk to it, "
                  "`strop serve` for the API, `strop audit verify` to check the trail.",
                  highlight=False)
