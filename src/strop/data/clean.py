"""Clean a training file into a new one: drop duplicates, redact personal data.

The input is never modified. The report says which line duplicates which and how many entities
of each type were found on which lines, never the values themselves.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from strop.data.dedupe import DuplicateFinder, example_texts
from strop.data.records import DataFileError, write_records
from strop.data.validate import analyse_file


@dataclass
class CleanReport:
    input_path: str
    output_path: str
    report_path: str | None
    format: str | None
    examples_in: int
    examples_out: int
    exact_duplicates: int = 0
    near_duplicates: int = 0
    duplicates: list[dict] = field(default_factory=list)  # {line, of_line, kind, similarity}
    pii_policy: str = "mask"
    pii_counts: dict[str, int] = field(default_factory=dict)  # entity type -> occurrences
    pii_lines: dict[str, list[int]] = field(default_factory=dict)  # entity type -> input lines
    pii_examples: int = 0  # examples holding at least one entity
    pii_not_scanned: list[str] = field(default_factory=list)  # entity types no detector ran for
    pii_notice: str | None = None  # says so in words
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def clean_file(path: str | Path, out_path: str | Path, pii: str | None = "mask",
               near_duplicate_threshold: float | None = 0.85, *, dedupe: bool = True,
               report_path: str | Path | None = None, entities: tuple[str, ...] | None = None,
               ner: bool | str = False, score_threshold: float = 0.4, hash_key: bytes | None = None,
               progress: Callable[[str, int, int], None] | None = None) -> CleanReport:
    """Write a cleaned copy of `path` to `out_path` and a JSON report beside it.

    pii: "report" (find only), "mask", "pseudonymize", "hash", or None to skip PII.
    `report_path` defaults to OUT.report.json.
    """
    started = time.perf_counter()
    path, out_path = Path(path), Path(out_path)
    if out_path.resolve() == path.resolve():
        raise ValueError("The output must be a new file: strop never edits the input in place.")
    report, records = analyse_file(path)
    if not report.ok:
        raise DataFileError(f"Cannot clean {path}: {report.openai_error()['message']} "
                            "Run `strop data check` to see every problem, fix them, then clean.")
    kind = report.format
    result = CleanReport(str(path), str(out_path), None, kind, len(records), 0, pii_policy=pii or "off")

    kept = records
    if dedupe:
        finder = DuplicateFinder(near_duplicate_threshold)
        kept = []
        items = [(r.line, *example_texts(r.data, kind)) for r in records]
        for record, duplicate in zip(records, finder.add_many(items)):
            if duplicate is None:
                kept.append(record)
            else:
                result.duplicates.append(duplicate.to_dict())
        result.exact_duplicates = sum(d["kind"] == "exact" for d in result.duplicates)
        result.near_duplicates = len(result.duplicates) - result.exact_duplicates

    output = [r.data for r in kept]
    if pii:
        from strop.data.pii import NOT_SCANNED_NOTICE, PiiRedactor, map_texts

        redactor = PiiRedactor(pii, entities=entities, ner=ner, score_threshold=score_threshold,
                               hash_key=hash_key)
        result.pii_not_scanned = list(redactor.not_scanned)
        result.pii_notice = NOT_SCANNED_NOTICE if redactor.not_scanned else None
        output = []
        for index, record in enumerate(kept, start=1):
            seen: list[str] = []

            def rewrite(text: str, where: str) -> str:
                new_text, findings = redactor.redact(text)
                seen.extend(f.entity_type for f in findings)
                return new_text

            cleaned = map_texts(record.data, kind, rewrite)
            output.append(cleaned if pii != "report" else record.data)
            for entity_type in seen:
                result.pii_counts[entity_type] = result.pii_counts.get(entity_type, 0) + 1
                lines = result.pii_lines.setdefault(entity_type, [])
                if not lines or lines[-1] != record.line:
                    lines.append(record.line)
            result.pii_examples += bool(seen)
            if progress and index % 1_000 == 0:
                progress("redacting", index, len(kept))

    # written whole or not at all: a crash midway never leaves a truncated file under that name
    result.examples_out = write_records(out_path, output)
    result.seconds = round(time.perf_counter() - started, 3)
    report_file = Path(report_path) if report_path else out_path.with_name(out_path.name + ".report.json")
    result.report_path = str(report_file)
    report_file.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    return result
