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


# At least 10 examples is a rule for training files only: a validation file may be small, and
# an upload is not yet either, so its count is checked when a job uses it.
COUNT_RULE = "invalid_n_examples"


def file_error(report, role: str) -> dict | None:
    """OpenAI's error object for a file in `role` ("upload", "training_file",
    "validation_file"), or None when the file is fit for it."""
    problems = [problem for problem in report.errors
                if role == "training_file" or problem.code != COUNT_RULE]
    if role == "validation_file" and report.n_examples == 0 and not problems:
        return {"code": COUNT_RULE, "message": "The validation file has no examples.",
                "param": role}
    if not problems:
        return None
    first = problems[0]
    extra = len(problems) - 1 + report.errors_not_shown
    more = f" ({extra} more problem{'s' if extra != 1 else ''} in the file)" if extra else ""
    return {"code": first.code, "message": first.message + more,
            "param": None if role == "upload" else role}
