"""What one pass over a training file keeps of it: counts, the first errors, and the line
numbers that warnings name; never the records themselves (unless asked to), so checking a file
takes memory that does not grow with the size of its examples.

Which lines are errors depends on the file's format, the majority of its lines', known only at
the end; so each format keeps its own tally (its first errors, its first lines should it turn
out to be a minority, what its warnings need), and `errors` picks at the end.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Iterable

from strop.data.chunks import Chunk
from strop.data.formats import FORMATS, unrecognised
from strop.data.records import RawLine, Record, ScanNotes, json_type
from strop.data.report import Finding, Problem
from strop.data.stats import system_text

INVALID_FILE = "invalid_training_file"


def problem(line: int | None, check: str, message: str, hint: str,
            param: str | None = None) -> Problem:
    return Problem(code=INVALID_FILE, message=message, line=line, param=param, hint=hint,
                   check=check)


@dataclass
class FormatTally:
    """The lines of one format, as far as the report can need them."""

    kind: str
    cap: int  # errors listed at most
    keep_lines: bool = False  # keep the line number of every valid record (for a second pass)
    keep_records: bool = False
    lines: int = 0
    first_lines: list[int] = field(default_factory=list)  # the first `cap` lines of this format
    findings: list[tuple[int, Finding]] = field(default_factory=list)  # the first `cap`
    n_findings: int = 0
    records: int = 0  # valid ones
    record_lines: array = field(default_factory=lambda: array("q"))  # with keep_lines
    kept: list[Record] = field(default_factory=list)  # with keep_records
    first_record_line: int | None = None
    without_system: list[int] = field(default_factory=list)  # chat and preference
    not_ending_with_assistant: list[int] = field(default_factory=list)  # chat
    system_prompt: str | None = None  # the first record's, while every record repeats it
    system_shared: bool = True

    def add(self, line: int, data: dict, findings) -> None:
        self.lines += 1
        if len(self.first_lines) < self.cap:
            self.first_lines.append(line)
        if findings:
            self.n_findings += len(findings)
            room = self.cap - len(self.findings)
            self.findings.extend((line, finding) for finding in findings[:max(room, 0)])
            return
        self.records += 1
        if self.keep_lines:
            self.record_lines.append(line)
        if self.keep_records:
            self.kept.append(Record(line, data))
        if self.kind == "chat" or self.kind == "preference":
            self._conversation(line, data)
        if self.first_record_line is None:
            self.first_record_line = line

    def _conversation(self, line: int, data: dict) -> None:
        messages = data["messages"] if self.kind == "chat" else data["input"]["messages"]
        system = system_text(data, self.kind)
        if system is None:
            self.without_system.append(line)
        if self.first_record_line is None:
            self.system_prompt = system
        elif self.system_shared and system != self.system_prompt:
            self.system_shared = False
        if self.kind == "chat" and messages[-1].get("role") != "assistant":
            self.not_ending_with_assistant.append(line)

    @property
    def shared_system_prompt(self) -> str | None:
        return self.system_prompt if self.system_shared else None


class FileTally:
    """Feed it a file's chunks in order; then ask for the file's format and its errors."""

    def __init__(self, cap: int, *, keep_lines: bool = False, keep_records: bool = False):
        self.cap = cap
        self.notes = ScanNotes()
        self.lines_seen = 0
        self.formats = {kind: FormatTally(kind, cap, keep_lines, keep_records)
                        for kind in FORMATS}
        self._unreadable: list[Problem] = []  # the first `cap`, whatever the file's format
        self._n_unreadable = 0

    def add_chunk(self, chunk: Chunk) -> None:
        self.notes.absorb(chunk.notes)
        formats = self.formats
        self.lines_seen += len(chunk.lines)
        for line, kind, data, findings in chunk.lines:
            tally = formats.get(kind)
            if tally is not None:
                tally.add(line, data, findings)
                continue
            self._n_unreadable += 1
            if len(self._unreadable) < self.cap:
                self._unreadable.append(_unreadable(data) if kind == "unreadable"
                                        else _unrecognised(line, data))

    @property
    def file_format(self) -> str | None:
        return _majority({kind: tally.lines for kind, tally in self.formats.items()})

    def errors(self) -> tuple[list[Problem], int]:
        """(the first `cap` errors in line order, how many more there are)."""
        file_format = self.file_format
        found = list(self._unreadable)
        total = self._n_unreadable
        for kind, tally in self.formats.items():
            if kind == file_format:
                found += [problem(line, f.check, f.at_line(line), f.hint, f.param)
                          for line, f in tally.findings]
                total += tally.n_findings
            else:
                found += [self._mixed(line, kind, file_format) for line in tally.first_lines]
                total += tally.lines
        found.sort(key=lambda p: p.line)  # stable: a line's findings keep their order
        shown = found[:self.cap]
        return shown, total - len(shown)

    def _mixed(self, line: int, kind: str, file_format: str) -> Problem:
        majority = self.formats[file_format].lines
        return problem(line, "mixed_formats",
                       f"Line {line}: a {kind} example in a {file_format} file "
                       f"({majority} of {self.lines_seen} lines are {file_format}).",
                       "Use one format per file; convert this example or move it to its own "
                       "file.")


def majority_format(kinds: Iterable[str | None]) -> str | None:
    """The format most of these lines' kinds are (the first of FORMATS on a tie); None when
    none is a format."""
    counts = dict.fromkeys(FORMATS, 0)
    for kind in kinds:
        if kind in counts:
            counts[kind] += 1
    return _majority(counts)


def _majority(counts: dict[str, int]) -> str | None:
    return max(FORMATS, key=lambda k: counts[k]) if any(counts.values()) else None


def _unrecognised(line: int, data: dict) -> Problem:
    finding = unrecognised(data)
    return problem(line, finding.check, finding.at_line(line), finding.hint)


def _unreadable(raw: RawLine) -> Problem:
    if raw.error == "invalid_utf8":
        return problem(raw.line, "invalid_utf8", f"Line {raw.line}: {raw.detail}.",
                       "Re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`).")
    if raw.error == "lone_surrogate":
        return problem(raw.line, "lone_surrogate", f"Line {raw.line}: {raw.detail}.",
                       "Fix the encoding where the file was made: a \\ud800-\\udfff escape "
                       "must be one half of a surrogate pair (e.g. \\ud83d\\ude00); write the "
                       "character whole, or remove it.", raw.param)
    if raw.error == "invalid_json":
        return problem(raw.line, "invalid_json", f"Line {raw.line}: invalid JSON ({raw.detail}).",
                       "Each line must be one complete JSON object; check quotes, commas and "
                       "brackets, and that no object spans several lines.")
    return problem(raw.line, "not_an_object",
                   f"Line {raw.line}: expected a JSON object, found {json_type(raw.data)}.",
                   'Wrap the example in an object, e.g. {"messages": [...]}.')
