"""Checking a file takes memory that does not grow with the file: ten times the examples, about
the same peak (the server checks every upload; a 200 MB file once doubled its RSS)."""

from __future__ import annotations

import json
import random
import tracemalloc

import pytest

from strop.data import chunks, validate_file
from strop.store.validation import check_training_file


def _chat_file(path, n: int, every_other_bad: int = 0):
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(n):
            if every_other_bad and i % every_other_bad == 5:
                handle.write('{"messages": "x"}\n')
                continue
            handle.write(json.dumps({"messages": [
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": f"Where is order {i}? It was due on day "
                                            f"{rng.randrange(30)}."},
                {"role": "assistant", "content": f"Order {i} arrives in {rng.randrange(2, 9)} "
                                                 f"days; ticket {i * 7} is open."}]}) + "\n")
    return path


def _peak_bytes(check) -> int:
    tracemalloc.start()
    try:
        check()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture
def small_chunks(monkeypatch):
    # both files span several chunks, so the peak is a chunk's whatever the file's size
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 64 << 10)


def test_the_upload_check_peaks_the_same_for_ten_times_the_examples(tmp_path, small_chunks):
    small, large = _chat_file(tmp_path / "s.jsonl", 2_000), _chat_file(tmp_path / "l.jsonl", 20_000)
    peaks = [_peak_bytes(lambda p=p: check_training_file(p)) for p in (small, large)]
    # holding every record made it 10x
    assert peaks[1] < 1.3 * peaks[0], peaks


def test_errors_and_token_statistics_stay_bounded_too(tmp_path, small_chunks, tiny):
    small = _chat_file(tmp_path / "s.jsonl", 2_000, every_other_bad=7)
    large = _chat_file(tmp_path / "l.jsonl", 20_000, every_other_bad=7)
    reports = []
    peaks = [_peak_bytes(lambda p=p: reports.append(validate_file(p, tiny.tokenizer, 64)))
             for p in (small, large)]
    assert peaks[1] < 1.5 * peaks[0], peaks  # a line number per record is all that grows
    large_report = reports[1]
    assert large_report.errors_not_shown == sum(i % 7 == 5 for i in range(20_000)) - 100
    assert large_report.stats["counted_examples"] == 2_000  # a sample, read from the file again
    assert large_report.stats["over_context"] == large_report.stats["examples"] > 2_000
