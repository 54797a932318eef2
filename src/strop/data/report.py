"""Findings about a data file: each names where it is, what is wrong and how to fix it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal, NamedTuple


class Finding(NamedTuple):
    check: str  # short identifier, e.g. "unknown_role"
    param: str | None
    message: str  # without the "Line N" prefix
    hint: str

    def at_line(self, line: int) -> str:
        """The message with its line: "Line 7, message 2: ..." or "Line 7: ..."."""
        if self.message.startswith("message "):
            return f"Line {line}, {self.message}."
        return f"Line {line}: {self.message}."


@dataclass
class Problem:
    code: str  # OpenAI-style: invalid_training_file, invalid_n_examples, ...
    message: str  # one sentence, names the line (and message index and key where relevant)
    line: int | None = None  # 1-based line number in the file
    param: str | None = None  # where in the record, e.g. "messages[2].content"
    hint: str = ""  # a short fix
    severity: Literal["error", "warning"] = "error"
    check: str = ""  # what was checked, e.g. "invalid_json", "unknown_role", "over_context"
    lines: list[int] = field(default_factory=list)  # every line concerned (warnings that recur)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ValidationReport:
    format: Literal["chat", "prompt_completion", "preference", "text"] | None
    n_examples: int
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    errors_not_shown: int = 0  # errors past the reporting cap, counted but not listed
    stats: dict | None = None  # token statistics and readiness, when a tokenizer was given
    duplicates: list[dict] = field(default_factory=list)  # {line, of_line, kind, similarity}

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "n_examples": self.n_examples,
            "ok": self.ok,
            "error": self.openai_error(),
            "errors": [p.to_dict() for p in self.errors],
            "errors_not_shown": self.errors_not_shown,
            "warnings": [p.to_dict() for p in self.warnings],
            "duplicates": self.duplicates,
            "stats": self.stats,
        }

    @property
    def ok(self) -> bool:
        return not self.errors

    def openai_error(self) -> dict | None:
        """The job `error` object OpenAI returns for this file, or None when it is valid."""
        if self.ok:
            return None
        first = self.errors[0]
        extra = len(self.errors) - 1 + self.errors_not_shown
        suffix = f" ({extra} more problem{'s' if extra != 1 else ''} in the file)" if extra else ""
        return {"code": first.code, "message": first.message + suffix, "param": "training_file"}
