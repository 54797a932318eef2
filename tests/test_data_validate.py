"""Validation: each error and warning has its own fixture; line, code and hint are asserted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from strop.data import detect_format, read_records, validate_file
from strop.data.records import DataFileError

FIXTURES = Path(__file__).parent / "fixtures" / "data"

# fixture -> (check, line, param, words the hint must contain)
ERRORS = {
    "invalid_json": ("invalid_json", 5, None, "one complete JSON object"),
    "invalid_utf8": ("invalid_utf8", 5, None, "UTF-8"),
    "not_an_object": ("not_an_object", 5, None, "Wrap the example in an object"),
    "missing_content": ("missing_field", 5, "messages[0].content", "Add a non-empty 'content'"),
    "empty_content": ("empty_field", 5, "messages[0].content", "Write the message text"),
    "content_wrong_type": ("wrong_type", 5, "messages[0].content", "Make 'content' a string"),
    "unknown_role": ("unknown_role", 5, "messages[1].role", "system, user, assistant, tool"),
    "unknown_key": ("unknown_key", 5, "labels", "Remove 'labels'"),
    "no_assistant": ("no_assistant_message", 5, "messages", "assistant reply with weight 1"),
    "invalid_weight": ("invalid_weight", 5, "messages[1].weight", "0 to skip"),
    "tool_arguments_not_json": ("invalid_tool_arguments", 5,
                                "messages[1].tool_calls[0].function.arguments",
                                "JSON-encoded object string"),
    "tool_without_call": ("unmatched_tool_message", 5, "messages[1].tool_call_id",
                          "matching tool_calls"),
    "mixed_formats": ("mixed_formats", 5, None, "one format per file"),
    "unknown_format": ("unknown_format", 5, None, '{"messages": [...]}'),
}


@pytest.mark.parametrize("fixture", sorted(ERRORS))
def test_each_error_names_line_code_and_hint(fixture):
    check, line, param, hint = ERRORS[fixture]
    report = validate_file(FIXTURES / f"{fixture}.jsonl")
    assert not report.ok
    assert [p.check for p in report.errors] == [check]
    problem = report.errors[0]
    assert problem.line == line
    assert problem.code == "invalid_training_file"
    assert problem.param == param
    assert hint in problem.hint
    assert problem.message.startswith(f"Line {line}")
    error = report.openai_error()
    assert error == {"code": "invalid_training_file", "message": problem.message,
                     "param": "training_file"}


def test_message_index_appears_in_message():
    report = validate_file(FIXTURES / "unknown_role.jsonl")
    assert report.errors[0].message == "Line 5, message 2: unknown role 'bot'."


def test_invalid_utf8_gives_byte_offsets():
    report = validate_file(FIXTURES / "invalid_utf8.jsonl")
    message = report.errors[0].message
    raw = (FIXTURES / "invalid_utf8.jsonl").read_bytes()
    file_offset = raw.index(b"\xe9") + 1
    line_start = sum(len(line) + 1 for line in raw.split(b"\n")[:4])
    assert f"byte {file_offset - line_start} of the line (byte {file_offset} of the file)" in message


def test_fewer_than_ten_examples_is_invalid_n_examples():
    report = validate_file(FIXTURES / "too_few.jsonl")
    assert report.errors[0].code == "invalid_n_examples"
    assert report.errors[0].check == "too_few_examples"
    assert "at least 10" in report.errors[0].message
    assert "at least 10 are required" in report.errors[0].hint
    assert report.openai_error()["code"] == "invalid_n_examples"


# fixture -> (check, first line, words the hint must contain)
WARNINGS = {
    "blank_line": ("blank_line", 5, "Remove empty lines"),
    "bom": ("bom", 1, "without BOM"),
    "inconsistent_system": ("inconsistent_system", 5, "same system message, or none"),
    "repeated_system": ("repeated_system_prompt", 1, "Shorten it"),
    "last_not_assistant": ("last_not_assistant", 5, "End each example"),
}


@pytest.mark.parametrize("fixture", sorted(WARNINGS))
def test_each_warning_names_line_and_hint_and_keeps_file_valid(fixture):
    check, line, hint = WARNINGS[fixture]
    report = validate_file(FIXTURES / f"{fixture}.jsonl")
    assert report.ok, report.errors
    found = [w for w in report.warnings if w.check == check]
    assert len(found) == 1, [w.check for w in report.warnings]
    assert found[0].line == line
    assert found[0].severity == "warning"
    assert found[0].code == check
    assert hint in found[0].hint
    assert report.openai_error() is None


def test_blank_line_is_skipped_not_counted():
    report = validate_file(FIXTURES / "blank_line.jsonl")
    assert report.n_examples == 12
    assert len(read_records(FIXTURES / "blank_line.jsonl")) == 12


def test_bom_is_skipped_when_reading():
    records = read_records(FIXTURES / "bom.jsonl")
    assert records[0].line == 1 and "messages" in records[0].data


def test_repeated_system_prompt_counts_tokens_per_epoch(tiny):
    report = validate_file(FIXTURES / "repeated_system.jsonl", tiny.tokenizer, 512)
    warning = next(w for w in report.warnings if w.check == "repeated_system_prompt")
    system = json.loads((FIXTURES / "repeated_system.jsonl").read_text().splitlines()[0])[
        "messages"][0]["content"]
    tokens = len(tiny.tokenizer(system, add_special_tokens=False)["input_ids"])
    assert f"{tokens} tokens" in warning.message
    assert f"{tokens * 12:,} tokens per epoch" in warning.message


def test_over_context_warning_with_tokenizer(tiny):
    report = validate_file(FIXTURES / "over_context.jsonl", tiny.tokenizer, context_length=200)
    warning = next(w for w in report.warnings if w.check == "over_context")
    assert warning.line == 5 and warning.lines == [5]
    assert "truncated from the end" in warning.message
    assert "Shorten or split" in warning.hint
    assert report.stats["over_context"] == 1


def test_duplicates_warning_says_which_line_repeats_which():
    report = validate_file(FIXTURES / "duplicates.jsonl", near_duplicate_threshold=0.85)
    assert report.ok
    assert [(d["line"], d["of_line"], d["kind"]) for d in report.duplicates] == [
        (5, 2, "exact"), (8, 2, "near")]
    warning = next(w for w in report.warnings if w.check == "duplicates")
    assert warning.lines == [5, 8] and "line 5 repeats 2" in warning.message


@pytest.mark.parametrize("fixture,kind", [
    ("valid_chat", "chat"), ("prompt_completion", "prompt_completion"),
    ("preference", "preference"), ("preference_legacy", "preference"), ("text", "text")])
def test_every_format_is_detected_and_valid(fixture, kind):
    path = FIXTURES / f"{fixture}.jsonl"
    report = validate_file(path)
    assert report.ok, report.errors
    assert report.format == kind == detect_format(path)
    assert report.n_examples == 12


def test_many_bad_lines_are_all_reported_in_one_pass(tmp_path):
    good = json.dumps({"messages": [{"role": "user", "content": "hi"},
                                    {"role": "assistant", "content": "hello"}]})
    bad_lines = set(range(7, 5000, 10))  # 500 bad lines of alternating kinds
    with open(tmp_path / "big.jsonl", "w") as handle:
        for number in range(1, 5001):
            if number in bad_lines:
                handle.write("{oops\n" if number % 20 == 7 else '{"messages": "x"}\n')
            else:
                handle.write(good + "\n")
    report = validate_file(tmp_path / "big.jsonl", max_problems=100)
    assert len(report.errors) == 100
    assert report.errors_not_shown == 400
    assert [p.line for p in report.errors] == sorted(bad_lines)[:100]
    assert {p.check for p in report.errors} == {"invalid_json", "wrong_type"}
    assert "(499 more problems in the file)" in report.openai_error()["message"]


def test_read_records_keeps_line_numbers_and_rejects_bad_lines():
    records = read_records(FIXTURES / "blank_line.jsonl")
    assert [r.line for r in records][:6] == [1, 2, 3, 4, 6, 7]
    with pytest.raises(DataFileError, match="Line 5"):
        read_records(FIXTURES / "invalid_json.jsonl")


def test_validation_does_not_import_torch(tmp_path):
    import subprocess

    code = ("import sys; from strop.data import validate_file; "
            f"r = validate_file({str(FIXTURES / 'valid_chat.jsonl')!r}, "
            "near_duplicate_threshold=0.85); "
            "assert r.ok; print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


def test_a_role_that_is_not_a_string_is_an_unknown_role(tmp_path):
    good = json.dumps({"messages": [{"role": "user", "content": "hi"},
                                    {"role": "assistant", "content": "hello"}]})
    odd = json.dumps({"messages": [{"role": ["user"], "content": "hi"},
                                   {"role": "assistant", "content": "hello"}]})
    (tmp_path / "odd.jsonl").write_text("\n".join([good] * 10 + [odd]) + "\n")
    report = validate_file(tmp_path / "odd.jsonl")
    assert [(p.line, p.check, p.param) for p in report.errors] == [
        (11, "unknown_role", "messages[0].role")]
    assert report.errors[0].message == "Line 11, message 1: unknown role ['user']."


def _chat_line(user: str, assistant: str = "a reply") -> str:
    return json.dumps({"messages": [{"role": "user", "content": user},
                                    {"role": "assistant", "content": assistant}]})


def _file_with(tmp_path, line_3: str) -> Path:
    """Twelve good chat lines, line 3 replaced by `line_3` (raw JSON text)."""
    lines = [_chat_line(f"question {i} about shipping item {i * 7}") for i in range(12)]
    lines[2] = line_3
    path = tmp_path / "surrogate.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_lone_surrogate_is_an_error_naming_line_place_and_character(tmp_path, tiny):
    # '\ud800' is a valid JSON escape, but half of a UTF-16 pair: UTF-8 cannot encode it
    path = _file_with(tmp_path, '{"messages": [{"role": "user", "content": "bad \\ud800 text"}, '
                                '{"role": "assistant", "content": "fine"}]}')
    report = validate_file(path, tiny.tokenizer, 512, near_duplicate_threshold=0.85)
    assert [(p.line, p.check, p.param, p.code) for p in report.errors] == [
        (3, "lone_surrogate", "messages[0].content", "invalid_training_file")]
    problem = report.errors[0]
    assert problem.message == ("Line 3: messages[0].content contains a lone surrogate \\ud800 at "
                               "character 5, half of a UTF-16 pair, which cannot be encoded as "
                               "UTF-8.")
    assert "Fix the encoding" in problem.hint
    json.dumps(report.to_dict(), ensure_ascii=False).encode("utf-8")  # the report itself prints
    assert report.stats["examples"] == 11  # token counting never saw the line


@pytest.mark.parametrize("line_3,param,words", [
    # a plain {role, content} message takes validation's fast path; one with a name does not
    ('{"messages": [{"role": "user", "content": "x", "name": "a\\udc00"}, '
     '{"role": "assistant", "content": "y"}]}', "messages[0].name", "lone surrogate \\udc00"),
    ('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], '
     '"\\ud83d": 1}', None, "the key '\\ud83d'"),
    ('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": null, '
     '"tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", '
     '"arguments": "{\\"q\\": \\"\\\\ud800\\"}"}}]}]}', None, None),  # an escaped escape: fine
    ('{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": null, '
     '"tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", '
     '"arguments": "{\\"q\\": \\"\\udbff\\"}"}}]}]}',
     "messages[1].tool_calls[0].function.arguments", "character 8"),
])
def test_lone_surrogates_are_found_anywhere_in_a_record(tmp_path, line_3, param, words):
    report = validate_file(_file_with(tmp_path, line_3))
    if words is None:
        assert report.ok, report.errors
        return
    assert [(p.line, p.check, p.param) for p in report.errors] == [(3, "lone_surrogate", param)]
    assert words in report.errors[0].message


def test_surrogate_pairs_and_escaped_backslashes_are_not_lone_surrogates(tmp_path):
    # what json.dumps writes for an emoji, and a literal backslash before "ud800"
    path = _file_with(tmp_path, _chat_line("smile \ud83d\ude00 and a path C:\\ud800"))
    assert "\\ud83d\\ude00" in path.read_text() and "\\\\ud800" in path.read_text()
    report = validate_file(path, near_duplicate_threshold=0.85)
    assert report.ok, report.errors
    assert read_records(path)[2].data["messages"][0]["content"] == \
        "smile \U0001F600 and a path C:\\ud800"


def test_read_records_refuses_a_lone_surrogate_naming_the_line(tmp_path):
    path = _file_with(tmp_path, '{"text": "half a pair: \\udfff"}')
    with pytest.raises(DataFileError, match=r"^Line 3: text contains a lone surrogate \\udfff "
                                            r"at character 14") as caught:
        read_records(path)
    assert caught.value.line == 3
