"""Reading a JSONL training file line by line, keeping each record's 1-based line number.

The scanner works on bytes so that it can name the exact byte where UTF-8 decoding fails, and
it never stops at the first bad line: callers decide whether a problem is fatal.
"""

from __future__ import annotations

import gc
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

BOM = b"\xef\xbb\xbf"
# A JSON escape in the surrogate range (\ud800-\udfff): the only way a lone surrogate, which
# UTF-8 cannot encode, gets into parsed text (the strict UTF-8 decoder refuses encoded ones).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@dataclass(slots=True)
class Record:
    line: int  # 1-based line number in the file
    data: dict


@dataclass(slots=True)
class RawLine:
    """One non-empty line as read: parsed JSON, or the reason it could not be parsed."""

    line: int
    data: object = None  # the parsed JSON value (any type) when `error` is None
    error: str | None = None  # "invalid_utf8", "invalid_json", "lone_surrogate"
    detail: str = ""  # the decoder's message, with byte or column offsets
    param: str | None = None  # where in the record (lone_surrogate), e.g. "messages[0].content"


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
                data = loads(text)
            except json.JSONDecodeError as exc:
                yield RawLine(number, error="invalid_json",
                              detail=f"{exc.msg} at column {exc.colno}")
                continue
            except RecursionError:
                yield RawLine(number, error="invalid_json", detail="nesting is too deep")
                continue
            # Valid JSON, but "\ud800" alone decodes to a character no UTF-8 file, tokenizer
            # or cleaned copy can hold; the raw text screens out almost every line cheaply.
            if "\\u" in text and _SURROGATE_ESCAPE.search(text):
                found = lone_surrogate(data)
                if found is not None:
                    yield RawLine(number, data, error="lone_surrogate", detail=found[1],
                                  param=found[0])
                    continue
            yield RawLine(number, data)


def raw_lines_at(path: str | Path, numbers: Iterable[int]) -> Iterator[tuple[int, bytes]]:
    """(number, bytes) of the lines numbered `numbers` (ascending, 1-based, as scan_lines
    numbers them) of `path`, a leading BOM removed: a second pass over a file that was checked
    reads what it needs again instead of holding every record."""
    wanted = iter(numbers)
    target = next(wanted, None)
    if target is None:
        return
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number != target:
                continue
            yield number, raw[len(BOM):] if number == 1 and raw.startswith(BOM) else raw
            target = next(wanted, None)
            if target is None:
                return


def records_at(path: str | Path, numbers: Iterable[int]) -> Iterator[Record]:
    """The records on lines `numbers` (ascending) of a file whose lines there are valid."""
    loads = json.loads
    for number, raw in raw_lines_at(path, numbers):
        yield Record(number, loads(raw))


def lone_surrogate(value: object) -> tuple[str | None, str] | None:
    """(JSON path, description) of the first string (value or key) in `value` holding a lone
    UTF-16 surrogate, or None. The description shows the character escaped, so it prints."""
    try:  # repr writes a surrogate as \udXXX (an emoji stays itself): a C-speed screen
        if not _SURROGATE_ESCAPE.search(repr(value)):
            return None
    except RecursionError:  # nested as deep as json allows: walk it instead
        pass
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            where = _surrogate_in(item)
            if where is not None:
                return path or None, f"{path or 'the value'} {where}"
        elif isinstance(item, dict):
            children = []
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and (where := _surrogate_in(key)) is not None:
                    escaped = _printable(key)
                    return (path or None,
                            f"the key '{escaped}'{f' of {path}' if path else ''} {where}")
                children.append((child, child_path))
            stack.extend(reversed(children))  # first in document order comes out first
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{index}]")
                         for index, child in reversed(list(enumerate(item))))
    return None


def _surrogate_in(text: str) -> str | None:
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"contains a lone surrogate {_printable(text[exc.start])} at character "
                f"{exc.start + 1}, half of a UTF-16 pair, which cannot be encoded as UTF-8")
    return None


def _printable(text: str) -> str:
    """`text` with surrogates written as \\udXXX escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
    """Write dicts as JSONL (UTF-8, one object per line, no ASCII escaping); return the count.

    The lines go to PATH.partial first, which replaces `path` only once all are written: a
    failure midway leaves an earlier file under that name as it was, and no partial file.
    A record UTF-8 cannot hold (a lone surrogate) raises DataFileError naming it.
    """
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    count = 0
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
    try:
        with open(partial, "w", encoding="utf-8", newline="\n") as handle:
            for record in records:
                line = dumps(record)
                try:
                    handle.write(line)
                except UnicodeEncodeError:
                    found = lone_surrogate(record)
                    raise DataFileError(
                        f"Cannot write {path}: record {count + 1}: "
                        f"{found[1] if found else 'text UTF-8 cannot encode'}.") from None
                handle.write("\n")
                count += 1
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
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
