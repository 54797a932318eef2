"""Large files read by worker processes in chunks give exactly the report a single process
gives: every error with its line, blank lines, the BOM, duplicates across chunk boundaries."""

from __future__ import annotations

import json
import random
from contextlib import closing
from concurrent.futures import ProcessPoolExecutor

import pytest

from strop.data import chunks, validate_file


class _CountingExecutor(ProcessPoolExecutor):
    submitted = 0

    def submit(self, *args, **kwargs):
        type(self).submitted += 1
        return super().submit(*args, **kwargs)


@pytest.fixture
def in_small_chunks(monkeypatch):
    """Any file is read by two forked workers, ~4 KB a chunk."""
    monkeypatch.setattr(chunks, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(chunks, "_cores", lambda: 2)
    monkeypatch.setattr(chunks, "ProcessPoolExecutor", _CountingExecutor)
    _CountingExecutor.submitted = 0
    return _CountingExecutor


def _chat(rng: random.Random, number: int) -> dict:
    return {"messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": f"Where is order {number}? It was due on day {rng.randrange(30)}."},
        {"role": "assistant", "content": f"Order {number} left the warehouse and arrives in "
                                         f"{rng.randrange(2, 9)} days; ticket {number * 7} is open."}]}


def _messy_file(path, rng: random.Random, leading: list[str] | None = None) -> dict[int, int]:
    """Chat lines with every kind of problem sprinkled in; returns the planted duplicates
    (line -> line it repeats)."""
    lines, sources, planted = list(leading or []), {}, {}
    bad = ['{"messages": [{"role": "user", "content": ""}]}', "{oops", "[1, 2]", '{"foo": 1}',
           '{"messages": [{"role": ["user"], "content": "a"}, {"role": "assistant", '
           '"content": "b"}]}', '{"prompt": "a", "completion": "b"}', "", "   "]
    for index in range(900):
        number = len(lines) + 1
        if index % 37 == 5:
            lines.append(bad[index // 37 % len(bad)])
        elif sources and index % 23 == 0:
            source = rng.choice(list(sources))
            copy = json.loads(sources[source])
            if index % 2:
                copy["messages"][-1]["content"] += " Thanks!"
            lines.append(json.dumps(copy))
            planted[number] = source
        else:
            lines.append(json.dumps(_chat(rng, number)))
            sources[number] = lines[-1]
    lines.append(json.dumps({"messages": [{"role": "user", "content": "a\ud800b"},
                                          {"role": "assistant", "content": "fine"}]}))
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode("utf-8", "surrogatepass")
                     + b"\n\xff\xfe not utf-8\n" + json.dumps(_chat(rng, 0)).encode())
    return planted


def test_workers_give_the_single_process_report(tmp_path, in_small_chunks, monkeypatch):
    path = tmp_path / "messy.jsonl"
    planted = _messy_file(path, random.Random(1))
    monkeypatch.setattr(chunks, "PARALLEL_MIN_BYTES", 10**12)
    alone = validate_file(path, near_duplicate_threshold=0.85, max_problems=500)
    monkeypatch.setattr(chunks, "PARALLEL_MIN_BYTES", 0)
    together = validate_file(path, near_duplicate_threshold=0.85, max_problems=500)
    assert in_small_chunks.submitted > 20  # the workers really read it, in many chunks
    assert together.to_dict() == alone.to_dict()
    found = {d["line"]: d["of_line"] for d in together.duplicates}
    assert {line: found.get(line) for line in planted} == planted
    checks = {p.check for p in together.errors}
    assert {"invalid_json", "invalid_utf8", "not_an_object", "unknown_format", "mixed_formats",
            "unknown_role", "empty_field", "lone_surrogate"} <= checks
    assert {w.check for w in together.warnings} >= {"bom", "blank_line", "duplicates"}


def test_a_first_chunk_of_another_format_does_not_hide_duplicates(tmp_path, in_small_chunks):
    pairs = [json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) for i in range(60)]
    path = tmp_path / "flip.jsonl"
    planted = _messy_file(path, random.Random(2), leading=pairs)
    report = validate_file(path, near_duplicate_threshold=0.85)
    assert in_small_chunks.submitted > 20
    assert report.format == "chat"
    found = {d["line"]: d["of_line"] for d in report.duplicates}
    assert {line: found.get(line) for line in planted} == planted


def test_workers_stay_a_few_chunks_ahead_of_the_caller(tmp_path, in_small_chunks):
    # chunks finished faster than they are taken would pile up in memory
    path = tmp_path / "messy.jsonl"
    _messy_file(path, random.Random(3))
    taken = 0
    with closing(chunks.FileChunks(path, 0.85)) as reader:
        for _ in reader:
            taken += 1
            assert in_small_chunks.submitted <= taken + 2 * 2  # two workers, two chunks each
    assert taken == len(chunks.line_aligned_chunks(path, chunks.CHUNK_BYTES)) > 20
