"""Reading a training file in chunks of whole lines: each line parsed, its format detected and
validated, and, when duplicates are wanted, each valid record fingerprinted.

A large file whose duplicates are wanted (the expensive check) is read by worker processes, a
chunk each, while the caller consumes the chunks in file order and never parses a line itself.
Records cross the process boundary as one marshal blob per chunk: marshal writes JSON-like data
~6x faster than pickle and reads it back in 40% of the time json.loads took to parse it.
Workers are forked: they start in milliseconds and inherit the loaded modules, where spawned
ones would each re-import numpy and the caller's `__main__` (~0.3 s, and a trap for scripts
without a main guard). They run only this package's pure-Python and numpy code, never the
tokenizer or torch, whose threads are what make forking a threaded process hazardous.
"""

from __future__ import annotations

import marshal
import multiprocessing
import os
import sys
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np

from strop.data.dedupe import Fingerprints, MinHasher, example_texts
from strop.data.formats import detect_format, validate_record
from strop.data.records import RawLine, ScanNotes, cyclic_gc_paused, scan_lines
from strop.data.report import Finding

# Below this (~20,000 chat examples) workers gain little: the token statistics and the
# duplicate comparison, done in the calling process either way, dominate.
PARALLEL_MIN_BYTES = 16 << 20
CHUNK_BYTES = 1 << 20  # per worker task: ~1,000 chat examples, enough to keep both cores busy


class ParsedLine(NamedTuple):
    line: int
    kind: str | None  # one of FORMATS, None when unrecognised, "unreadable" when not an object
    data: object  # the record, or the RawLine of an unreadable line
    findings: Sequence[Finding] | None  # validated as its own format; None unless a format

    @property
    def valid(self) -> bool:
        """A valid record of its own format (whether that is the file's is decided later)."""
        return self.findings is not None and not self.findings


@dataclass
class Chunk:
    """Consecutive lines of a file, parsed, with what duplicate detection needs of them."""

    notes: ScanNotes
    lines: list[ParsedLine]
    fingerprinted: np.ndarray | None = None  # line numbers of the valid lines, ascending
    fingerprints: Fingerprints | None = None  # theirs, in the same order

    def __getstate__(self) -> dict:
        # What marshal cannot write (the RawLine of an unreadable line, the findings of an
        # invalid one) travels beside the blob and is put back in place.
        rows = [(line.line, line.kind, None if line.kind == "unreadable" else line.data,
                 line.findings if line.valid else None) for line in self.lines]
        return {"notes": self.notes, "rows": marshal.dumps(rows),
                "unreadable": {i: line.data for i, line in enumerate(self.lines)
                               if line.kind == "unreadable"},
                "findings": {i: line.findings for i, line in enumerate(self.lines)
                             if line.findings},
                "fingerprinted": self.fingerprinted, "fingerprints": self.fingerprints}

    def __setstate__(self, state: dict) -> None:
        # tuple.__new__ builds each ParsedLine in C; the class's own __new__ is Python code
        self.lines = list(map(tuple.__new__, repeat(ParsedLine), marshal.loads(state["rows"])))
        for index, raw in state["unreadable"].items():
            self.lines[index] = self.lines[index]._replace(data=raw)
        for index, findings in state["findings"].items():
            self.lines[index] = self.lines[index]._replace(findings=findings)
        self.notes = state["notes"]
        self.fingerprinted, self.fingerprints = state["fingerprinted"], state["fingerprints"]


def parse_line(raw: RawLine) -> ParsedLine:
    if raw.error is None and isinstance(raw.data, dict):
        kind = detect_format(raw.data)
        return ParsedLine(raw.line, kind, raw.data,
                          validate_record(raw.data, kind) if kind else None)
    return ParsedLine(raw.line, "unreadable", raw, None)


def read_chunk(path: str | Path, start: int, stop: int, first_line: int,
               near_threshold: float | None) -> Chunk:
    """The lines in bytes [start, stop) of `path`, the first numbered `first_line`;
    fingerprinted for duplicate detection unless `near_threshold` is None."""
    chunk = Chunk(ScanNotes(), [])
    valid: list[ParsedLine] = []
    with cyclic_gc_paused():  # in a worker too: collecting would also copy the parent's pages
        for raw in scan_lines(path, chunk.notes, start=start, stop=stop, first_line=first_line):
            parsed = parse_line(raw)
            chunk.lines.append(parsed)
            if near_threshold is not None and parsed.valid:
                valid.append(parsed)
        if near_threshold is not None:
            chunk.fingerprinted = np.array([line.line for line in valid], dtype=np.int64)
            chunk.fingerprints = _hasher(near_threshold).fingerprint(
                [example_texts(line.data, line.kind) for line in valid])
    return chunk


@lru_cache(maxsize=4)
def _hasher(near_threshold: float) -> MinHasher:
    return MinHasher(near_threshold)


class FileChunks:
    """The chunks of a file in order, each ~CHUNK_BYTES of whole lines, so that no more than a
    few chunks are ever held: read here, or, for a large file whose duplicates are wanted (the
    expensive check), by worker processes (one per core) that start on construction and stay at
    most a few chunks ahead of the caller. Close it."""

    def __init__(self, path: Path, near_threshold: float | None,
                 progress: Callable[[str, int, int], None] | None = None):
        self._path, self._near_threshold, self._progress = path, near_threshold, progress
        self._executor: ProcessPoolExecutor | None = None
        if near_threshold is not None and _parallel_pays(path):
            self._executor = ProcessPoolExecutor(_cores(), multiprocessing.get_context("fork"))

    def __iter__(self) -> Iterator[Chunk]:
        parts = line_aligned_chunks(self._path, CHUNK_BYTES)
        if self._executor is None:
            lines = 0
            for start, stop, first_line in parts:
                chunk = read_chunk(self._path, start, stop, first_line, self._near_threshold)
                lines += len(chunk.lines)
                yield chunk
                if self._progress:
                    self._progress("validating", lines, 0)
            return
        total = len(parts)
        # Submitted as the caller takes them: finished chunks waiting in memory for a slower
        # caller would make a large file's check grow with the file.
        ahead = 2 * _cores()
        pending: deque[Future] = deque()
        for done in range(1, total + 1):
            while parts and len(pending) < ahead:
                start, stop, first_line = parts.popleft()
                pending.append(self._executor.submit(read_chunk, str(self._path), start, stop,
                                                     first_line, self._near_threshold))
            yield pending.popleft().result()
            if self._progress:
                self._progress("validating and fingerprinting", done, total)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)


def line_aligned_chunks(path: Path, size: int) -> deque[tuple[int, int, int]]:
    """(start, stop, first line number) of consecutive parts of about `size` bytes that end
    after a newline (or at the end of the file)."""
    chunks, start, first_line = deque(), 0, 1
    with open(path, "rb") as handle:
        while block := handle.read(size):
            block += handle.readline()
            chunks.append((start, start + len(block), first_line))
            start += len(block)
            first_line += block.count(b"\n")
    return chunks


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _parallel_pays(path: Path) -> bool:
    # fork only on Linux: macOS offers it, but its system frameworks are not fork-safe
    return (sys.platform.startswith("linux") and _cores() > 1
            and path.stat().st_size >= PARALLEL_MIN_BYTES)
