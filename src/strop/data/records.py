"""Reading a JSONL training file line by line, keeping each record's 1-based line number.

The scanner works on bytes so that it can name the exact byte where UTF-8 decoding fails, and
it never stops at the first bad line: callers decide whether a problem is fatal.
"""

from __future__ import annotations

import gc
import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

BOM = b"\xef\xbb\xbf"


@dataclass(slots=True)
class Record:
    line: int  # 1-based line number in the file
    data: dict


@dataclass(slots=True)
class RawLine:
    """One non-empty line as read: parsed JSON, or the reason it could not be parsed."""

    line: int
    data: object = None  # the parsed JSON value (any type) when `error` is None
    error: str | None = None  # "invalid_utf8", "invalid_json"
    detail: str = ""  # the decoder's message, with byte or column offsets


class DataFileError(ValueError):
    """A training file that cannot be read as records; the message names the line."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


@dataclass
class ScanNotes:
    """File-level facts the scanner saw: a byte order mark, blank lines."""

    bom: bool = False
    blank_lines: list[int] | None = None
    trailing_newline: bool = True

    def __post_init__(self) -> None:
        if self.blank_lines is None:
            self.blank_lines = []

    def absorb(self, later: ScanNotes) -> None:
        """Add what was seen in a later part of the same file."""
        self.bom = self.bom or later.bom
        self.blank_lines.extend(later.blank_lines)
        self.trailing_newline = self.trailing_newline and later.trailing_newline


def scan_lines(path: str | Path, notes: ScanNotes | None = None, *, start: int = 0,
               stop: int | None = None, first_line: int = 1) -> Iterator[RawLine]:
    """Yield every non-blank line of `path` parsed as JSON (or with its parse error).

    `start` and `stop` (byte offsets at line boundaries) read a part of the file, whose first
    line is numbered `first_line`.
    """
    notes = notes if notes is not None else ScanNotes()
    loads = json.loads
    offset = start  # byte offset of the current line in the file
    with open(path, "rb") as handle:
        handle.seek(start)
        for number, raw in enumerate(handle, start=first_line):
            if stop is not None and offset >= stop:
                break
            line_start = offset
            offset += len(raw)
            if line_start == 0 and raw.startswith(BOM):
                notes.bom = True
                raw = raw[len(BOM):]
                line_start += len(BOM)
            if not raw.endswith(b"\n"):
                notes.trailing_newline = False
            if not raw or raw.isspace():
                notes.blank_lines.append(number)
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield RawLine(number, error="invalid_utf8",
                              detail=f"byte {exc.start + 1} of the line (byte "
                                     f"{line_start + exc.start + 1} of the file) is not valid "
                                     f"UTF-8 ({exc.reason})")
                continue
            try:
                yield RawLine(number, loads(text))
            except json.JSONDecodeError as exc:
                yield RawLine(number, error="invalid_json",
                              detail=f"{exc.msg} at column {exc.colno}")
            except RecursionError:
                yield RawLine(number, error="invalid_json", detail="nesting is too deep")


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Parsed JSON holds no reference cycles, yet the cyclic collector re-scans every record
    of a growing file again and again (a third of a large check's time); pause it meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_records(path: str | Path) -> list[Record]:
    """All records of a JSONL file, in order. Blank lines and a leading BOM are skipped.

    Meant for files that passed `validate_file`; a line that is not a JSON object raises
    DataFileError naming the line.
    """
    records = []
    with cyclic_gc_paused():
        for raw in scan_lines(path):
            if raw.error is not None:
                raise DataFileError(f"Line {raw.line}: {raw.detail}.", raw.line)
            if not isinstance(raw.data, dict):
                raise DataFileError(
                    f"Line {raw.line}: expected a JSON object, found {json_type(raw.data)}.", raw.line
                )
            records.append(Record(raw.line, raw.data))
    return records


def as_records(source: str | Path | Iterable[Record | dict]) -> list[Record]:
    """Records from a path or an iterable of Records or plain dicts (numbered from 1)."""
    if isinstance(source, (str, Path)):
        return read_records(source)
    records = []
    for index, item in enumerate(source, start=1):
        records.append(item if isinstance(item, Record) else Record(index, item))
    return records


def write_records(path: str | Path, records: Iterable[dict]) -> int:
    """Write dicts as JSONL (UTF-8, one object per line, no ASCII escaping); return the count."""
    count = 0
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for record in records:
            handle.write(dumps(record))
            handle.write("\n")
            count += 1
    return count


def json_type(value: object) -> str:
    """How JSON would name the type of `value`, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
