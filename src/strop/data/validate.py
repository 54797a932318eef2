"""Validate a training file in one pass: every problem, with its line, a code and a fix hint.

Errors make the file unusable (OpenAI codes `invalid_training_file`, `invalid_n_examples`);
warnings point at things that will train, but probably not as intended. Recurring warnings are
reported once with every line concerned. Nothing here imports torch; token counts happen only
when a tokenizer is passed.
"""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from strop.data.chunks import Chunk, FileChunks, ParsedLine
from strop.data.dedupe import Duplicate, DuplicateFinder, example_texts
from strop.data.formats import FORMATS, unrecognised
from strop.data.records import Record, ScanNotes, cyclic_gc_paused, json_type
from strop.data.report import Problem, ValidationReport

MIN_EXAMPLES = 10
INVALID_FILE = "invalid_training_file"
INVALID_N = "invalid_n_examples"


@dataclass
class _Collector:
    cap: int
    errors: list[Problem] = field(default_factory=list)
    hidden: int = 0

    def error(self, line: int | None, check: str, message: str, hint: str,
              param: str | None = None, code: str = INVALID_FILE) -> None:
        if len(self.errors) >= self.cap:
            self.hidden += 1
            return
        self.errors.append(Problem(code=code, message=message, line=line, param=param, hint=hint,
                                   check=check))


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
    """
    report, _ = analyse_file(path, tokenizer, context_length, max_problems,
                             near_duplicate_threshold=near_duplicate_threshold,
                             exact_counts=exact_counts, progress=progress)
    return report


def analyse_file(path: str | Path, tokenizer=None, context_length: int | None = None,
                 max_problems: int = 100, *, near_duplicate_threshold: float | None = None,
                 exact_counts: bool = False,
                 progress: Callable[[str, int, int], None] | None = None
                 ) -> tuple[ValidationReport, list[Record]]:
    """validate_file, also returning the valid records of the file's format."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such training file: {path}")
    duplicates = (None if near_duplicate_threshold is None
                  else _DuplicateScan(near_duplicate_threshold))
    notes, parsed = ScanNotes(), []
    with cyclic_gc_paused():
        with closing(FileChunks(path, near_duplicate_threshold, progress)) as chunks:
            for chunk in chunks:
                notes.absorb(chunk.notes)
                parsed.extend(chunk.lines)
                if duplicates:
                    duplicates.add_chunk(chunk)
        return _analyse(parsed, notes, duplicates, tokenizer, context_length, max_problems,
                        exact_counts, progress)


def _format_counts(parsed: list[ParsedLine]) -> tuple[str | None, dict[str, int]]:
    """(the majority format, lines per format)."""
    counts = {kind: 0 for kind in FORMATS}
    for line in parsed:
        if line.kind in counts:
            counts[line.kind] += 1
    return (max(FORMATS, key=lambda k: counts[k]) if any(counts.values()) else None), counts


def _analyse(parsed: list[ParsedLine], notes: ScanNotes, duplicates: _DuplicateScan | None,
             tokenizer, context_length: int | None, max_problems: int, exact_counts: bool,
             progress) -> tuple[ValidationReport, list[Record]]:
    collector = _Collector(max_problems)
    lines_seen = len(parsed)
    file_format, counts = _format_counts(parsed)
    records: list[Record] = []
    for line, kind, data, findings in parsed:
        if kind == "unreadable":
            _report_unreadable(collector, data)
            continue
        if kind is None:
            finding = unrecognised(data)
            collector.error(line, finding.check, finding.at_line(line), finding.hint)
            continue
        if kind != file_format:
            collector.error(line, "mixed_formats",
                            f"Line {line}: a {kind} example in a {file_format} file "
                            f"({counts[file_format]} of {len(parsed)} lines are {file_format}).",
                            "Use one format per file; convert this example or move it to its "
                            "own file.")
            continue
        for finding in findings:
            collector.error(line, finding.check, finding.at_line(line), finding.hint,
                            finding.param)
        if not findings:
            records.append(Record(line, data))

    if lines_seen < MIN_EXAMPLES:
        collector.errors.insert(0, Problem(
            code=INVALID_N, check="too_few_examples", line=None, param=None,
            message=f"Training file has {lines_seen} example{'s' if lines_seen != 1 else ''}, "
                    f"but must have at least {MIN_EXAMPLES}.",
            hint=f"Add examples: at least {MIN_EXAMPLES} are required and 50-100 is a useful "
                 "start."))
        if len(collector.errors) > collector.cap:
            collector.errors.pop()
            collector.hidden += 1

    report = ValidationReport(format=file_format, n_examples=lines_seen,
                              errors=collector.errors, errors_not_shown=collector.hidden)
    report.warnings.extend(_file_warnings(notes))
    report.warnings.extend(_record_warnings(records, file_format))
    if duplicates is not None and records:
        report.duplicates = [d.to_dict() for d in duplicates.found(file_format, records)]
        if report.duplicates:
            report.warnings.append(_duplicate_warning(report.duplicates))
    if tokenizer is not None and records:
        from strop.data.stats import compute_stats

        report.stats = compute_stats(
            records, tokenizer, context_length=context_length, kind=file_format,
            exact=exact_counts,
            progress=(lambda done, total: progress("counting tokens", done, total))
            if progress else None)
        report.warnings.extend(_token_warnings(report.stats))
    report.warnings.extend(_system_prompt_warning(records, file_format, report.stats))
    report.warnings.extend(_last_message_warning(records, file_format))
    return report, records


def _report_unreadable(collector: _Collector, raw) -> None:
    if raw.error == "invalid_utf8":
        collector.error(raw.line, "invalid_utf8", f"Line {raw.line}: {raw.detail}.",
                        "Re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`).")
    elif raw.error == "lone_surrogate":
        collector.error(raw.line, "lone_surrogate", f"Line {raw.line}: {raw.detail}.",
                        "Fix the encoding where the file was made: a \\ud800-\\udfff escape "
                        "must be one half of a surrogate pair (e.g. \\ud83d\\ude00); write the "
                        "character whole, or remove it.", raw.param)
    elif raw.error == "invalid_json":
        collector.error(raw.line, "invalid_json", f"Line {raw.line}: invalid JSON ({raw.detail}).",
                        "Each line must be one complete JSON object; check quotes, commas and "
                        "brackets, and that no object spans several lines.")
    else:
        collector.error(raw.line, "not_an_object",
                        f"Line {raw.line}: expected a JSON object, found {json_type(raw.data)}.",
                        'Wrap the example in an object, e.g. {"messages": [...]}.')


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


def _messages_of(record: Record, kind: str) -> list | None:
    if kind == "chat":
        return record.data["messages"]
    if kind == "preference":
        return record.data["input"]["messages"]
    return None


def _record_warnings(records: list[Record], kind: str | None) -> list[Problem]:
    if kind not in ("chat", "preference") or not records:
        return []
    warnings = []
    without_system = [r.line for r in records if _messages_of(r, kind)[0].get("role") != "system"]
    if without_system and len(without_system) < len(records):
        warnings.append(_warning(
            "inconsistent_system", without_system,
            f"{len(without_system)} of {len(records)} examples have no system message "
            f"({_lines_phrase(without_system)}) while the others do.",
            "Give every example the same system message, or none: the model learns to behave "
            "differently with and without one, and at inference you will send one or the other."))
    return warnings


def _system_prompt_warning(records: list[Record], kind: str | None, stats: dict | None
                           ) -> list[Problem]:
    if kind not in ("chat", "preference") or len(records) < 2:
        return []
    from strop.data.stats import shared_system_prompt

    shared = stats["system_prompt"] if stats else shared_system_prompt(records, kind)
    warnings = []
    if shared:
        estimate = "" if shared["exact"] else "~"
        warnings.append(_warning(
            "repeated_system_prompt", [records[0].line],
            f"All {len(records)} examples repeat the same system prompt ({shared['characters']} "
            f"characters, {estimate}{shared['tokens']} tokens): {estimate}"
            f"{shared['tokens_per_epoch']:,} tokens per epoch are spent on it.",
            "Shorten it, or fine-tune without it (the tuned model learns the behaviour) and send "
            "the short version at inference."))
    return warnings


def _last_message_warning(records: list[Record], kind: str | None) -> list[Problem]:
    warnings = []
    if kind == "chat":
        not_last = [r.line for r in records if r.data["messages"][-1].get("role") != "assistant"]
        if not_last:
            warnings.append(_warning(
                "last_not_assistant", not_last,
                f"{len(not_last)} examples end with a message that is not from the assistant "
                f"({_lines_phrase(not_last)}); what follows the last reply is not trained on.",
                "End each example with the assistant reply the model should learn."))
    return warnings


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
    records.
    """

    def __init__(self, near_threshold: float):
        self.near_threshold = near_threshold
        self.finder = DuplicateFinder(near_threshold)
        self.guess: str | None = None
        self.results: list[Duplicate | None] = []

    def add_chunk(self, chunk: Chunk) -> None:
        if self.guess is None:
            self.guess = _format_counts(chunk.lines)[0]
            if self.guess is None:  # nothing recognisable yet, so no records either
                return
        lines = [line.line for line in chunk.lines if line.kind == self.guess and line.valid]
        prints = chunk.fingerprints.take(np.searchsorted(chunk.fingerprinted, lines))
        self.results.extend(self.finder.add_fingerprints(lines, prints))

    def found(self, file_format: str, records: list[Record]) -> list[Duplicate]:
        results = self.results
        if file_format != self.guess:
            finder = DuplicateFinder(self.near_threshold)
            results = finder.add_many([(r.line, *example_texts(r.data, file_format))
                                       for r in records])
        return [duplicate for duplicate in results if duplicate is not None]


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
