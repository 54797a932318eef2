"""Validate a training file in one pass: every problem, with its line, a code and a fix hint.

Errors make the file unusable (OpenAI codes `invalid_training_file`, `invalid_n_examples`);
warnings point at things that will train, but probably not as intended. Recurring warnings are
reported once with every line concerned. Nothing here imports torch; token counts happen only
when a tokenizer is passed.
"""

from __future__ import annotations

from contextlib import closing
from itertools import islice
from pathlib import Path
from typing import Callable

import numpy as np

from strop.data.chunks import Chunk, FileChunks
from strop.data.dedupe import Duplicate, DuplicateFinder, example_texts
from strop.data.records import Record, ScanNotes, cyclic_gc_paused, records_at
from strop.data.report import Problem, ValidationReport
from strop.data.stats import system_prompt_cost
from strop.data.tally import FileTally, FormatTally, majority_format

MIN_EXAMPLES = 10
INVALID_N = "invalid_n_examples"
DUPLICATE_BATCH = 4096  # records compared at once when a file's duplicates are found again


def _warning(check: str, lines: list[int], message: str, hint: str) -> Problem:
    return Problem(code=check, message=message, line=lines[0] if lines else None, hint=hint,
                   severity="warning", check=check, lines=lines)


def _lines_phrase(lines: list[int], shown: int = 5) -> str:
    head = ", ".join(str(n) for n in lines[:shown])
    more = len(lines) - shown
    return f"line{'s' if len(lines) > 1 else ''} {head}" + (f" and {more} more" if more > 0 else "")


def validate_file(path: str | Path, tokenizer=None, context_length: int | None = None,
                  max_problems: int = 100, *, near_duplicate_threshold: float | None = None,
                  exact_counts: bool = False,
                  progress: Callable[[str, int, int], None] | None = None) -> ValidationReport:
    """Check `path` and return every problem found (errors capped at `max_problems`).

    With a tokenizer, token statistics (report.stats) and over-context warnings are added.
    With `near_duplicate_threshold`, exact and near duplicates are reported as a warning.
    The file is read a chunk at a time and no record is kept: memory stays flat however large
    the file (the statistics read their sample from the file again).
    """
    report, _ = _check(Path(path), tokenizer, context_length, max_problems,
                       near_duplicate_threshold, exact_counts, progress, keep_records=False)
    return report


def analyse_file(path: str | Path, tokenizer=None, context_length: int | None = None,
                 max_problems: int = 100, *, near_duplicate_threshold: float | None = None,
                 exact_counts: bool = False,
                 progress: Callable[[str, int, int], None] | None = None
                 ) -> tuple[ValidationReport, list[Record]]:
    """validate_file, also returning the valid records of the file's format (all in memory)."""
    return _check(Path(path), tokenizer, context_length, max_problems, near_duplicate_threshold,
                  exact_counts, progress, keep_records=True)


def _check(path: Path, tokenizer, context_length: int | None, max_problems: int,
           near_duplicate_threshold: float | None, exact_counts: bool, progress,
           keep_records: bool) -> tuple[ValidationReport, list[Record]]:
    if not path.is_file():
        raise FileNotFoundError(f"No such training file: {path}")
    duplicates = (None if near_duplicate_threshold is None
                  else _DuplicateScan(near_duplicate_threshold))
    tally = FileTally(max_problems, keep_records=keep_records,
                      keep_lines=not keep_records and (tokenizer is not None
                                                       or duplicates is not None))
    with cyclic_gc_paused():
        with closing(FileChunks(path, near_duplicate_threshold, progress)) as chunks:
            for chunk in chunks:
                tally.add_chunk(chunk)
                if duplicates:
                    duplicates.add_chunk(chunk)
        file_format = tally.file_format
        records = tally.formats[file_format].kept if file_format else []
        report = _report(path, tally, duplicates, tokenizer, context_length, exact_counts,
                         progress)
    return report, records


def _report(path: Path, tally: FileTally, duplicates: _DuplicateScan | None, tokenizer,
            context_length: int | None, exact_counts: bool, progress) -> ValidationReport:
    errors, hidden = tally.errors()
    if tally.lines_seen < MIN_EXAMPLES:
        errors.insert(0, Problem(
            code=INVALID_N, check="too_few_examples", line=None, param=None,
            message=f"Training file has {tally.lines_seen} "
                    f"example{'s' if tally.lines_seen != 1 else ''}, "
                    f"but must have at least {MIN_EXAMPLES}.",
            hint=f"Add examples: at least {MIN_EXAMPLES} are required and 50-100 is a useful "
                 "start."))
        if len(errors) > tally.cap:
            errors.pop()
            hidden += 1
    file_format = tally.file_format
    report = ValidationReport(format=file_format, n_examples=tally.lines_seen, errors=errors,
                              errors_not_shown=hidden)
    report.warnings.extend(_file_warnings(tally.notes))
    if file_format is None:
        return report
    kept = tally.formats[file_format]
    report.warnings.extend(_record_warnings(kept))
    if duplicates is not None and kept.records:
        report.duplicates = [d.to_dict() for d in duplicates.found(path, kept)]
        if report.duplicates:
            report.warnings.append(_duplicate_warning(report.duplicates))
    if tokenizer is not None and kept.records:
        from strop.data.stats import compute_stats, file_stats

        count_progress = ((lambda done, total: progress("counting tokens", done, total))
                          if progress else None)
        if kept.keep_records:
            report.stats = compute_stats(kept.kept, tokenizer, context_length=context_length,
                                         kind=file_format, exact=exact_counts,
                                         progress=count_progress)
        else:
            report.stats = file_stats(path, kept.record_lines, file_format,
                                      kept.shared_system_prompt, tokenizer,
                                      context_length=context_length, exact=exact_counts,
                                      progress=count_progress)
        report.warnings.extend(_token_warnings(report.stats))
    report.warnings.extend(_system_prompt_warning(kept, report.stats))
    report.warnings.extend(_last_message_warning(kept))
    return report


def _file_warnings(notes: ScanNotes) -> list[Problem]:
    warnings = []
    if notes.bom:
        warnings.append(_warning(
            "bom", [1], "Line 1: the file starts with a UTF-8 byte order mark (BOM); strop skips "
            "it, but other tools (OpenAI's API among them) reject the first line.",
            "Save the file as UTF-8 without BOM."))
    if notes.blank_lines:
        warnings.append(_warning(
            "blank_line", notes.blank_lines,
            f"Blank {_lines_phrase(notes.blank_lines)} skipped.",
            "Remove empty lines; every line should hold one example."))
    return warnings


def _record_warnings(kept: FormatTally) -> list[Problem]:
    without_system = kept.without_system
    if without_system and len(without_system) < kept.records:
        return [_warning(
            "inconsistent_system", without_system,
            f"{len(without_system)} of {kept.records} examples have no system message "
            f"({_lines_phrase(without_system)}) while the others do.",
            "Give every example the same system message, or none: the model learns to behave "
            "differently with and without one, and at inference you will send one or the other.")]
    return []


def _system_prompt_warning(kept: FormatTally, stats: dict | None) -> list[Problem]:
    if kept.kind not in ("chat", "preference") or kept.records < 2:
        return []
    shared = (stats["system_prompt"] if stats
              else system_prompt_cost(kept.shared_system_prompt, kept.records, None))
    if not shared:
        return []
    estimate = "" if shared["exact"] else "~"
    return [_warning(
        "repeated_system_prompt", [kept.first_record_line],
        f"All {kept.records} examples repeat the same system prompt ({shared['characters']} "
        f"characters, {estimate}{shared['tokens']} tokens): {estimate}"
        f"{shared['tokens_per_epoch']:,} tokens per epoch are spent on it.",
        "Shorten it, or fine-tune without it (the tuned model learns the behaviour) and send "
        "the short version at inference.")]


def _last_message_warning(kept: FormatTally) -> list[Problem]:
    not_last = kept.not_ending_with_assistant
    if not not_last:
        return []
    return [_warning(
        "last_not_assistant", not_last,
        f"{len(not_last)} examples end with a message that is not from the assistant "
        f"({_lines_phrase(not_last)}); what follows the last reply is not trained on.",
        "End each example with the assistant reply the model should learn.")]


def _token_warnings(stats: dict) -> list[Problem]:
    if not stats.get("over_context"):
        return []
    lines = stats["over_context_lines"]
    return [_warning(
        "over_context", lines,
        f"{stats['over_context']} examples are longer than the model's context of "
        f"{stats['context_length']} tokens ({_lines_phrase(lines)}); they will be truncated from "
        "the end.",
        "Shorten or split these examples, or choose a model with a longer context.")]


class _DuplicateScan:
    """Exact and near duplicates among a file's records, compared chunk by chunk as the chunks
    arrive.

    Which lines are records depends on the file's majority format, known only at the end:
    chunks are compared assuming the first chunk's majority, and a file where that guess turns
    out wrong (one that starts with lines of another format) is compared again from its
    records, read from the file once more.
    """

    def __init__(self, near_threshold: float):
        self.near_threshold = near_threshold
        self.finder = DuplicateFinder(near_threshold)
        self.guess: str | None = None
        self.results: list[Duplicate] = []

    def add_chunk(self, chunk: Chunk) -> None:
        if self.guess is None:
            self.guess = majority_format(line.kind for line in chunk.lines)
            if self.guess is None:  # nothing recognisable yet, so no records either
                return
        lines = [line.line for line in chunk.lines if line.kind == self.guess and line.valid]
        prints = chunk.fingerprints.take(np.searchsorted(chunk.fingerprinted, lines))
        self.results += [d for d in self.finder.add_fingerprints(lines, prints) if d]

    def found(self, path: Path, kept: FormatTally) -> list[Duplicate]:
        if kept.kind == self.guess:
            return self.results
        finder, found = DuplicateFinder(self.near_threshold), []
        records = iter(kept.kept if kept.keep_records else records_at(path, kept.record_lines))
        while batch := list(islice(records, DUPLICATE_BATCH)):
            found += [d for d in finder.add_many([(r.line, *example_texts(r.data, kept.kind))
                                                  for r in batch]) if d]
        return found


def _duplicate_warning(duplicates: list[dict]) -> Problem:
    exact = sum(d["kind"] == "exact" for d in duplicates)
    near = len(duplicates) - exact
    pairs = ", ".join(f"{d['line']} repeats {d['of_line']}" for d in duplicates[:3])
    lines = [d["line"] for d in duplicates]
    return _warning(
        "duplicates", lines,
        f"{exact} exact and {near} near-duplicate examples (line {pairs}"
        f"{', ...' if len(duplicates) > 3 else ''}).",
        "Remove them with `strop data clean`: duplicates over-weight a few examples and leak "
        "between training and validation splits.")
