"""Split a training file into training and validation sets, deterministically for a seed.

Near-duplicates (and exact ones) are grouped first and each group goes to one side whole, so the
validation set never contains a near-copy of a training example.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path

from strop.data.dedupe import DuplicateFinder, example_texts
from strop.data.records import DataFileError, write_records
from strop.data.validate import analyse_file


@dataclass
class SplitReport:
    train_path: str
    validation_path: str
    train_examples: int
    validation_examples: int
    groups_kept_together: int  # groups of duplicates that were each kept on one side
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)


def split_file(path: str | Path, train_out: str | Path, validation_out: str | Path,
               validation: float | int = 0.1, seed: int = 0,
               near_duplicate_threshold: float | None = 0.85) -> SplitReport:
    """Write `train_out` and `validation_out` from a valid file; `validation` is a fraction
    (0 < v < 1) or a number of examples."""
    report, records = analyse_file(path)
    if not report.ok:
        raise DataFileError(f"Cannot split {path}: {report.openai_error()['message']} "
                            "Run `strop data check` for every problem.")
    n = len(records)
    if isinstance(validation, float) and not 0 < validation < 1:
        raise ValueError(f"validation must be a fraction between 0 and 1, got {validation}")
    wanted = round(validation * n) if isinstance(validation, float) else int(validation)
    wanted = max(1, wanted)
    if wanted >= n:
        raise ValueError(f"Cannot hold out {wanted} of {n} examples and still train on some.")

    finder = DuplicateFinder(near_duplicate_threshold)
    groups: dict[int, list[int]] = {}  # first line of a group -> indexes of its members
    items = [(r.line, *example_texts(r.data, report.format)) for r in records]
    for index, (record, duplicate) in enumerate(zip(records, finder.add_many(items))):
        groups.setdefault(duplicate.of_line if duplicate else record.line, []).append(index)

    order = sorted(groups)
    random.Random(seed).shuffle(order)
    held_out: set[int] = set()
    for key in order:
        if len(held_out) >= wanted:
            break
        if len(held_out) + len(groups[key]) > wanted and held_out:
            continue  # a big group would overshoot; try smaller ones further down the order
        held_out.update(groups[key])
    train = [r.data for i, r in enumerate(records) if i not in held_out]
    valid = [r.data for i, r in enumerate(records) if i in held_out]
    write_records(train_out, train)
    write_records(validation_out, valid)
    return SplitReport(str(train_out), str(validation_out), len(train), len(valid),
                       sum(1 for members in groups.values() if len(members) > 1), seed)
