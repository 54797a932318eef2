"""The one place the service asks the data toolkit whether a file is usable for training."""

from __future__ import annotations

from pathlib import Path


def check_training_file(path: Path, tokenizer=None, context_length: int | None = None):
    """The data toolkit's ValidationReport for `path` (`.ok`, `.openai_error()`, ...)."""
    from strop.data import validate_file

    return validate_file(path, tokenizer=tokenizer, context_length=context_length)


def report_summary(report) -> dict:
    """What is kept in the database about a validation: enough to explain a failure later."""
    return {
        "ok": report.ok,
        "format": report.format,
        "n_examples": report.n_examples,
        "errors": [problem.to_dict() for problem in report.errors[:20]],
        "warnings": [problem.to_dict() for problem in report.warnings[:20]],
        "errors_not_shown": report.errors_not_shown + max(0, len(report.errors) - 20),
    }
