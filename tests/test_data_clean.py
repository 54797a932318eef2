"""Cleaning: duplicates, PII policies (offline), reports without values; split; stats."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest

from strop.data import clean_file, compute_stats, read_records, split_file
from strop.data.dedupe import DuplicateFinder
from strop.data.pii import ENTITIES, PiiRedactor

FIXTURES = Path(__file__).parent / "fixtures" / "data"

PII_SAMPLES = {
    "EMAIL_ADDRESS": "jane.roe@example.com",
    "PHONE_NUMBER": "+1 415 555 0134",
    "CREDIT_CARD": "4111 1111 1111 1111",
    "US_SSN": "536-22-8726",
    "IBAN_CODE": "GB82 WEST 1234 5698 7654 32",
    "IP_ADDRESS": "192.168.14.27",
    "URL": "https://acme-support.com/ticket/77",
    "CRYPTO": "1BoatSLRHtKNngkdXEeobR76b53LETtpyT",
    "DATE_OF_BIRTH": "born on 1985-03-12",
}


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted during a test that must stay offline")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _chat(user: str, assistant: str) -> dict:
    return {"messages": [{"role": "user", "content": user},
                         {"role": "assistant", "content": assistant}]}


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _pii_file(tmp_path: Path) -> Path:
    rows = [_chat(f"My {entity.lower().replace('_', ' ')} is {value}, topic {i}.",
                  f"Thanks, noted for ticket {i}.") for i, (entity, value)
            in enumerate(PII_SAMPLES.items())]
    rows += [_chat(f"Plain question {i} about returns of item {chr(65 + i)}?",
                   f"Plain answer {i}.") for i in range(4)]
    rows.append(_chat("Email jane.roe@example.com again please, issue 99.",
                      "Sure, writing to jane.roe@example.com now."))
    return _write(tmp_path / "pii.jsonl", rows)


@pytest.mark.parametrize("entity", ENTITIES)
def test_prefilter_lets_every_entity_through(entity):
    assert PiiRedactor("report").candidate_entities(f"value: {PII_SAMPLES[entity]}.") \
        .count(entity) == 1


def test_prefilter_finds_exactly_what_every_detector_finds_on_every_text():
    texts = [f"{prefix}{value}{suffix}" for value in PII_SAMPLES.values()
             for prefix, suffix in (("", ""), ("Contact: ", "."), ("(", ")"), ("x\n", " y"))]
    texts += ["Order 48213 shipped on 12 March for $120.", "Ticket 99999-1 is open.",
              "Call (030) 123 45 or 0911 123.", "See www.example.org/a?b=1 today",
              "fe80::1ff:fe23:4567:890a is the router", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
              "IBAN DE89 3704 0044 0532 0130 00", "ssn 536 22 8726 and 53622-8726"]
    fast, naive = PiiRedactor("report"), PiiRedactor("report", prefilter=False)
    for text in texts:
        assert fast.find(text) == naive.find(text), text


def test_prefilter_skips_text_without_candidates():
    redactor = PiiRedactor("mask")
    assert redactor.candidate_entities("Thanks for asking, we ship within a few days.") == []


def test_mask_finds_every_entity_type_offline(tmp_path, no_network):
    path = _pii_file(tmp_path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    report = clean_file(path, tmp_path / "out.jsonl", pii="mask")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before  # input untouched
    for entity in ENTITIES:
        assert report.pii_counts.get(entity, 0) >= 1, (entity, report.pii_counts)
    cleaned = (tmp_path / "out.jsonl").read_text()
    for value in PII_SAMPLES.values():
        assert value not in cleaned
    assert "<EMAIL_ADDRESS>" in cleaned and "<CREDIT_CARD>" in cleaned
    assert report.pii_lines["EMAIL_ADDRESS"] == [1, 14]
    assert report.pii_counts["EMAIL_ADDRESS"] == 3


def test_report_never_contains_values_and_report_policy_keeps_text(tmp_path, no_network):
    path = _pii_file(tmp_path)
    report = clean_file(path, tmp_path / "out.jsonl", pii="report")
    saved = Path(report.report_path).read_text()
    for value in PII_SAMPLES.values():
        assert value not in saved
    assert json.loads(saved)["pii_counts"]["EMAIL_ADDRESS"] == 3
    assert [r.data for r in read_records(tmp_path / "out.jsonl")] == \
        [r.data for r in read_records(path)]


def test_pseudonyms_are_consistent_across_the_file(tmp_path, no_network):
    path = _pii_file(tmp_path)
    clean_file(path, tmp_path / "out.jsonl", pii="pseudonymize")
    records = read_records(tmp_path / "out.jsonl")
    assert "<EMAIL_ADDRESS_1>" in records[0].data["messages"][0]["content"]
    last = records[-1].data["messages"]
    assert "<EMAIL_ADDRESS_1>" in last[0]["content"] and "<EMAIL_ADDRESS_1>" in last[1]["content"]


def test_hash_policy_is_consistent_and_hides_value(tmp_path, no_network):
    path = _pii_file(tmp_path)
    clean_file(path, tmp_path / "out.jsonl", pii="hash", hash_key=b"k" * 32)
    last = read_records(tmp_path / "out.jsonl")[-1].data["messages"]
    token = last[1]["content"].split("writing to ")[1].split(" now")[0]
    assert token.startswith("<EMAIL_ADDRESS:") and token in last[0]["content"]


def test_tool_call_arguments_are_redacted_and_stay_json(tmp_path, no_network):
    rows = [{"messages": [
        {"role": "user", "content": f"Find customer {i}"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "lookup", "arguments": json.dumps({"email": f"user{i}@example.org"})}}]},
        {"role": "tool", "tool_call_id": "c1", "content": f"customer number {i}"},
        {"role": "assistant", "content": f"Found customer {i}, account {chr(65 + i)}."}]}
        for i in range(10)]
    path = _write(tmp_path / "tools.jsonl", rows)
    clean_file(path, tmp_path / "out.jsonl", pii="mask", dedupe=False)
    for record in read_records(tmp_path / "out.jsonl"):
        args = json.loads(record.data["messages"][1]["tool_calls"][0]["function"]["arguments"])
        assert args == {"email": "<EMAIL_ADDRESS>"}


def test_clean_removes_exact_and_near_duplicates_and_says_which(tmp_path):
    report = clean_file(FIXTURES / "duplicates.jsonl", tmp_path / "out.jsonl", pii=None)
    assert (report.exact_duplicates, report.near_duplicates) == (1, 1)
    assert [(d["line"], d["of_line"]) for d in report.duplicates] == [(5, 2), (8, 2)]
    assert report.examples_out == 10 == len(read_records(tmp_path / "out.jsonl"))


def test_exact_duplicates_ignore_case_and_whitespace():
    from strop.data.dedupe import example_texts

    finder = DuplicateFinder(None)
    a, _ = example_texts(_chat("Hello  World", "OK"), "chat")
    b, _ = example_texts(_chat("hello world", "ok "), "chat")
    c, _ = example_texts(_chat("hello world", "no"), "chat")
    assert finder.add(1, a) is None
    assert finder.add(2, b) == finder.add(2, b).__class__(2, 1, "exact", 1.0)
    assert finder.add(3, c) is None


def test_near_duplicate_threshold_is_respected():
    text = "the quick brown fox jumps over the lazy dog near the river bank today"
    close = text + " again"
    for threshold, expect in ((0.8, True), (0.95, False)):
        finder = DuplicateFinder(threshold)
        finder.add(1, "a", text)
        assert (finder.add(2, "b", close) is not None) is expect


def test_clean_refuses_invalid_file_and_in_place_output(tmp_path):
    from strop.data.records import DataFileError

    with pytest.raises(DataFileError, match="Line 5"):
        clean_file(FIXTURES / "invalid_json.jsonl", tmp_path / "out.jsonl")
    copy = tmp_path / "in.jsonl"
    copy.write_bytes((FIXTURES / "valid_chat.jsonl").read_bytes())
    with pytest.raises(ValueError, match="never edits the input"):
        clean_file(copy, copy)


def test_split_is_deterministic_and_keeps_duplicates_together(tmp_path):
    rows = [_chat(f"Unique question {i} about topic {i * 13}?", f"Unique answer {i}.")
            for i in range(40)]
    rows[30] = rows[3]  # exact duplicate
    rows[31] = _chat(rows[4]["messages"][0]["content"],
                     rows[4]["messages"][1]["content"] + " ok")  # near duplicate
    path = _write(tmp_path / "d.jsonl", rows)
    first = split_file(path, tmp_path / "t1.jsonl", tmp_path / "v1.jsonl", 0.25, seed=7)
    again = split_file(path, tmp_path / "t2.jsonl", tmp_path / "v2.jsonl", 0.25, seed=7)
    other = split_file(path, tmp_path / "t3.jsonl", tmp_path / "v3.jsonl", 0.25, seed=8)
    assert (tmp_path / "v1.jsonl").read_bytes() == (tmp_path / "v2.jsonl").read_bytes()
    assert (tmp_path / "v1.jsonl").read_bytes() != (tmp_path / "v3.jsonl").read_bytes()
    assert first.validation_examples == 10 and first.train_examples == 30
    assert first.groups_kept_together == 2 and other.train_examples + other.validation_examples == 40
    for seed in range(12):
        split_file(path, tmp_path / "t.jsonl", tmp_path / "v.jsonl", 0.25, seed=seed)
        train = {json.dumps(r.data) for r in read_records(tmp_path / "t.jsonl")}
        valid = {json.dumps(r.data) for r in read_records(tmp_path / "v.jsonl")}
        assert not train & valid
        in_valid = [json.dumps(rows[i]) in valid for i in (4, 31)]
        assert in_valid[0] == in_valid[1]


def test_stats_match_the_chat_template(tiny):
    tokenizer = tiny.tokenizer
    records = read_records(FIXTURES / "valid_chat.jsonl")
    stats = compute_stats(records, tokenizer, context_length=512)
    expected_total = sum(len(tokenizer(tokenizer.apply_chat_template(r.data["messages"],
                                                                      tokenize=False),
                                       add_special_tokens=False)["input_ids"]) for r in records)
    assert stats["tokens"]["total"] == expected_total
    im_end = 1
    expected_trained = sum(len(tokenizer(r.data["messages"][1]["content"],
                                         add_special_tokens=False)["input_ids"]) + im_end
                           for r in records)
    assert stats["tokens"]["trained"] == expected_trained
    assert stats["tokens"]["prompt"] == expected_total - expected_trained
    assert stats["messages_per_example"]["median"] == 2
    assert stats["exact"] and stats["examples"] == 12


def test_weight_zero_replies_are_not_trained(tiny):
    rows = [{"messages": [{"role": "user", "content": "hi"},
                          {"role": "assistant", "content": "first reply", "weight": 0},
                          {"role": "user", "content": "again"},
                          {"role": "assistant", "content": "second"}]}]
    stats = compute_stats(rows, tiny.tokenizer)
    second = len(tiny.tokenizer("second", add_special_tokens=False)["input_ids"])
    assert stats["tokens"]["trained"] == second + 1


def test_sampled_stats_still_find_every_over_context_example(tiny):
    rows = [_chat(f"short question {i}", f"short answer {i}") for i in range(60)]
    for i in (3, 41, 58):
        rows[i] = _chat("long " * 300, "ok")
    stats = compute_stats(rows, tiny.tokenizer, context_length=200, sample_limit=20)
    assert not stats["exact"] and stats["counted_examples"] == 20
    assert stats["over_context"] == 3 and stats["over_context_lines"] == [4, 42, 59]


def test_readiness_flags_few_examples_and_knowledge_in_answers(tiny):
    rows = [_chat(f"Who maintains pump {i}?", f"Pump {i} is maintained by Karlsen Hydro in "
                                               f"Bergen since {1990 + i}.") for i in range(20)]
    topics = {a["topic"] for a in compute_stats(rows, tiny.tokenizer)["readiness"]}
    assert {"few_examples", "knowledge"} <= topics
    plain = [_chat(f"Rewrite politely: give me report {i}", f"could you please send report {i}?")
             for i in range(150)]
    topics = {a["topic"] for a in compute_stats(plain, tiny.tokenizer)["readiness"]}
    assert "few_examples" not in topics and "knowledge" not in topics


def test_near_duplicates_are_found_in_heavily_templated_data():
    import random

    from strop.data.dedupe import example_texts, find_duplicates
    from strop.data.records import Record

    rng = random.Random(3)
    rows, planted = [], {}
    for i in range(3000):
        if i % 150 == 149:  # a near copy of an earlier example
            source = rng.randrange(len(rows))
            copy = json.loads(json.dumps(rows[source]))
            copy["messages"][1]["content"] += " Thanks again."
            planted[i + 1] = source + 1
            rows.append(copy)
            continue
        n = rng.randrange(10**6)
        rows.append(_chat(f"Hi, my order {n} for item {rng.randrange(500)} has not arrived.",
                          f"I am sorry order {n} is late. I have asked the warehouse to check "
                          f"parcel {rng.randrange(10**6)}; expect news in {rng.randrange(9)} days."))
    records = [Record(i + 1, r) for i, r in enumerate(rows)]
    found = {d.line: d.of_line for d in find_duplicates(records, "chat", 0.85)}
    assert {line: found.get(line) for line in planted} == planted
    assert set(found) == set(planted)


def test_a_template_that_refuses_an_example_is_reported_not_fatal(tiny):
    import copy

    tokenizer = copy.copy(tiny.tokenizer)
    tokenizer.chat_template = ("{% for m in messages %}{% if m['role'] == 'tool' %}"
                               "{{ raise_exception('no tools') }}{% endif %}"
                               "{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}")
    rows = [_chat("hi", "hello"), {"messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "a", "type": "function",
                                              "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "assistant", "content": "done"}]}]
    stats = compute_stats(rows, tokenizer)
    assert stats["template_failures"] == 1 and stats["tokens"]["total"] > 0
    assert "template" in {a["topic"] for a in stats["readiness"]}


@pytest.mark.slow
def test_check_with_the_embedded_model(embedded_model_folder):
    from strop.data import validate_file
    from strop.data.tokenizer import load_tokenizer

    tokenizer, context = load_tokenizer(str(embedded_model_folder))
    report = validate_file(FIXTURES / "valid_chat.jsonl", tokenizer, context)
    assert report.ok and context >= 2048
    stats = report.stats
    rendered = tokenizer.apply_chat_template(read_records(FIXTURES / "valid_chat.jsonl")[0]
                                             .data["messages"], tokenize=False)
    assert "<|im_start|>" in rendered  # SmolLM2's ChatML template is what was counted
    assert 0 < stats["tokens"]["trained"] < stats["tokens"]["prompt"] < stats["tokens"]["total"]


def _rows_with_a_lone_surrogate_on_line_3() -> list[dict]:
    rows = [_chat(f"Question {i} about parcel {i * 11}?", f"Answer {i}: it ships on day {i}.")
            for i in range(12)]
    rows[2] = _chat("bad \ud800 text", "fine")  # json.dumps writes it as the escape \ud800
    return rows


def test_clean_and_split_refuse_a_lone_surrogate_and_keep_earlier_outputs(tmp_path):
    from strop.data.records import DataFileError

    path = _write(tmp_path / "in.jsonl", _rows_with_a_lone_surrogate_on_line_3())
    outputs = [tmp_path / "out.jsonl", tmp_path / "t.jsonl", tmp_path / "v.jsonl"]
    for output in outputs:
        output.write_text("an earlier run's output\n")
    reason = r"Line 3: messages\[0\]\.content contains a lone surrogate \\ud800"
    with pytest.raises(DataFileError, match=reason):
        clean_file(path, outputs[0], pii=None)
    with pytest.raises(DataFileError, match=reason):
        split_file(path, outputs[1], outputs[2], 0.25)
    assert [o.read_text() for o in outputs] == ["an earlier run's output\n"] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl", "t.jsonl",
                                                          "v.jsonl"]  # no partial files


def test_clean_and_split_write_valid_utf8_once_the_line_is_fixed(tmp_path):
    rows = _rows_with_a_lone_surrogate_on_line_3()
    rows[2] = _chat("a whole pair \U0001F600 is fine", "fine")  # written as \ud83d\ude00
    path = _write(tmp_path / "in.jsonl", rows)
    assert "\\ud83d\\ude00" in path.read_text()
    clean_file(path, tmp_path / "out.jsonl", pii=None)
    split_file(path, tmp_path / "t.jsonl", tmp_path / "v.jsonl", 0.25)
    written = {name: (tmp_path / name).read_bytes().decode("utf-8")  # strict: valid UTF-8
               for name in ("out.jsonl", "t.jsonl", "v.jsonl")}
    assert "\U0001F600" in written["out.jsonl"]
    assert "\U0001F600" in written["t.jsonl"] + written["v.jsonl"]
    assert len(read_records(tmp_path / "out.jsonl")) == 12


def test_write_records_is_all_or_nothing_and_names_the_record(tmp_path):
    from strop.data.records import DataFileError, write_records

    out = tmp_path / "out.jsonl"
    out.write_text("kept\n")
    with pytest.raises(DataFileError, match=r"record 2: messages\[0\]\.content contains a lone "
                                            r"surrogate \\ud800"):
        write_records(out, [_chat("ok", "ok"), _chat("a\ud800", "b"), _chat("c", "d")])
    assert out.read_text() == "kept\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
    assert write_records(out, [_chat("ok", "ok")]) == 1 and len(read_records(out)) == 1


def test_stats_of_records_in_memory_name_a_lone_surrogate(tiny):
    from strop.data.records import DataFileError

    with pytest.raises(DataFileError, match=r"^Line 3: messages\[0\]\.content contains a lone "
                                            r"surrogate \\ud800"):
        compute_stats(_rows_with_a_lone_surrogate_on_line_3(), tiny.tokenizer)
