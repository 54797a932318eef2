"""The four training-file formats: how to recognise each, what makes a record valid, and how a
valid record reads as a conversation.

This is the one definition of a record that `strop data check`, the token counts and training
share: training refuses what validation refuses, with the same words. Validators return
findings as (check, param, message, hint) tuples; `validate.py` turns them into Problems with
the line number. Message numbers in sentences are 1-based ("message 2"); params are JSON paths
with 0-based indexes ("messages[1].content"), as OpenAI writes them. The checks of a chat
conversation itself live in messages.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from strop.data.messages import check_messages, check_tools, content_text, unknown_keys
from strop.data.records import Record, json_type
from strop.data.report import Finding

FORMATS = ("chat", "prompt_completion", "preference", "text")

CHAT_KEYS = {"messages", "tools", "parallel_tool_calls", "functions"}
PROMPT_COMPLETION_KEYS = {"prompt", "completion"}
PREFERENCE_KEYS = {"input", "preferred_output", "non_preferred_output",
                   "preferred_completion", "non_preferred_completion"}
TEXT_KEYS = {"text", "id", "meta", "metadata"}  # pretraining corpora commonly carry ids/metadata


# The keys that make a record one format. A record with keys of two formats is neither: which
# one was meant is the user's to say, not strop's to guess.
FORMAT_KEYS = {
    "chat": frozenset({"messages"}),
    "preference": frozenset(PREFERENCE_KEYS),
    "prompt_completion": frozenset(PROMPT_COMPLETION_KEYS),
    "text": frozenset({"text"}),
}


def detect_format(source: dict | Record | str | Path | Iterable) -> str | None:
    """The format of one record (dict or Record), or the majority format of a file or records.

    Returns one of FORMATS, or None when nothing is recognisable (`unrecognised` says why).
    """
    if isinstance(source, Record):
        source = source.data
    if isinstance(source, dict):
        return _record_format(source)
    if isinstance(source, (str, Path)):
        from strop.data.records import scan_lines

        source = (raw.data for raw in scan_lines(source) if raw.error is None)
    counts: dict[str, int] = {}
    for item in source:
        data = item.data if isinstance(item, Record) else item
        kind = _record_format(data) if isinstance(data, dict) else None
        if kind:
            counts[kind] = counts.get(kind, 0) + 1
    return max(counts, key=counts.get) if counts else None


_FORMAT_OF_KEY = {key: kind for kind, keys in FORMAT_KEYS.items() for key in keys}


def _record_format(record: dict) -> str | None:
    found = None
    for key in record:  # a record has a few keys: cheaper than testing every format's set
        kind = _FORMAT_OF_KEY.get(key)
        if kind is not None and kind != found:
            if found is not None:
                return None
            found = kind
    return found


# Where a preference example keeps what a chat or prompt/completion example has at the top level.
_DPO_PROMPT_FIX = {
    "chat": 'the prompt conversation in "input": {"messages": [...]} instead of a top-level '
            '"messages"',
    "prompt_completion": 'the prompt in "input": {"messages": [{"role": "user", "content": '
                         '...}]} instead of "prompt"',
}


def unrecognised(record: dict) -> Finding:
    """Why `record` has no format: none of the formats' keys, or the keys of two."""
    present = {kind: sorted(keys.intersection(record)) for kind, keys in FORMAT_KEYS.items()
               if not keys.isdisjoint(record)}
    if len(present) < 2:
        return Finding("unknown_format", None,
                       f"not a recognised example (keys: {', '.join(sorted(record)) or 'none'})",
                       'Use {"messages": [...]} (chat), {"prompt", "completion"}, '
                       '{"input", "preferred_output", "non_preferred_output"} (preference) '
                       'or {"text"} (plain text).')
    keys = " and ".join(f"{', '.join(repr(k) for k in names)} ({kind})"
                        for kind, names in present.items())
    other = next(iter(set(present) - {"preference"})) if len(present) == 2 else None
    if "preference" in present and other in _DPO_PROMPT_FIX:
        hint = (f"For DPO, put {_DPO_PROMPT_FIX[other]}; for supervised fine-tuning, remove "
                f"{', '.join(repr(k) for k in present['preference'])}.")
    else:
        hint = "Keep the keys of the one format this example is meant to be; remove the others."
    return Finding("ambiguous_format", None,
                   f"mixes keys of different formats: {keys}; an example has one format",
                   hint)


def validate_record(record: dict, kind: str) -> list[Finding]:
    return _VALIDATORS[kind](record)


# --- per format --------------------------------------------------------------------------------


def _validate_chat(record: dict) -> list[Finding]:
    findings = unknown_keys(record, CHAT_KEYS, "")
    findings.extend(check_tools(record))
    findings.extend(check_messages(record.get("messages")))
    return findings


def _validate_prompt_completion(record: dict) -> list[Finding]:
    findings = unknown_keys(record, PROMPT_COMPLETION_KEYS, "")
    for key in ("prompt", "completion"):
        if key not in record:
            findings.append(Finding("missing_field", key, f"no '{key}'",
                                    f"Add '{key}' as a string."))
        elif not isinstance(record[key], str):
            findings.append(Finding("wrong_type", key,
                                    f"'{key}' is {json_type(record[key])}, expected a string",
                                    f"Make '{key}' a string."))
    completion = record.get("completion")
    if isinstance(completion, str) and not completion.strip():
        findings.append(Finding("empty_field", "completion", "'completion' is empty",
                                "Write the completion the model should learn."))
    return findings


def preference_outputs(record: dict) -> tuple[object, object]:
    preferred = record.get("preferred_output", record.get("preferred_completion"))
    rejected = record.get("non_preferred_output", record.get("non_preferred_completion"))
    return preferred, rejected


def _check_preference_output(value: object, key: str) -> list[Finding]:
    if isinstance(value, str):  # the older *_completion spelling carried plain text
        if not value.strip():
            return [Finding("empty_field", key, f"'{key}' is empty", "Write the response text.")]
        return []
    if not isinstance(value, list) or not value:
        return [Finding("wrong_type", key,
                        f"'{key}' is {json_type(value)}, expected a non-empty array of assistant "
                        "messages",
                        '[{"role": "assistant", "content": "..."}]')]
    findings = check_messages(value, key)
    for index, message in enumerate(value):
        if isinstance(message, dict) and message.get("role") not in (None, "assistant"):
            findings.append(Finding("invalid_value", f"{key}[{index}].role",
                                    f"'{key}' message {index + 1} has role "
                                    f"{message.get('role')!r}",
                                    "Preferred and non-preferred outputs are assistant messages."))
    return findings


def _validate_preference(record: dict) -> list[Finding]:
    findings = unknown_keys(record, PREFERENCE_KEYS, "")
    source = record.get("input")
    if not isinstance(source, dict):
        findings.append(Finding("missing_field" if source is None else "wrong_type", "input",
                                "no 'input' object" if source is None else
                                f"'input' is {json_type(source)}, expected an object",
                                'Add "input": {"messages": [...]} with the prompt conversation.'))
    else:
        findings.extend(unknown_keys(source, CHAT_KEYS, "input: ", "input."))
        findings.extend(check_tools(source, "input."))
        findings.extend(check_messages(source.get("messages"), "input.messages",
                                       require_assistant=False))
    preferred, rejected = preference_outputs(record)
    for key, value in (("preferred_output", preferred), ("non_preferred_output", rejected)):
        if value is None:
            findings.append(Finding("missing_field", key, f"no '{key}'",
                                    f"Add '{key}': [{{\"role\": \"assistant\", \"content\": ...}}]."))
        else:
            name = key if key in record else key.replace("_output", "_completion")
            findings.extend(_check_preference_output(value, name))
    return findings


def _validate_text(record: dict) -> list[Finding]:
    findings = unknown_keys(record, TEXT_KEYS, "")
    text = record.get("text")
    if not isinstance(text, str):
        findings.append(Finding("wrong_type", "text",
                                f"'text' is {json_type(text)}, expected a string",
                                "Make 'text' a string."))
    elif not text.strip():
        findings.append(Finding("empty_field", "text", "'text' is empty",
                                "Remove the line or give it text."))
    return findings


_VALIDATORS = {
    "chat": _validate_chat,
    "prompt_completion": _validate_prompt_completion,
    "preference": _validate_preference,
    "text": _validate_text,
}


# --- conversions shared by stats, dedupe, PII, the token counts and training --------------------


def conversation(record: dict, kind: str) -> list[dict]:
    """A valid record as chat messages with string content (for token counts and dedupe)."""
    if kind == "chat":
        return [_flat(m) for m in record["messages"]]
    if kind == "prompt_completion":
        return [{"role": "user", "content": record["prompt"]},
                {"role": "assistant", "content": record["completion"]}]
    if kind == "preference":
        preferred, rejected = preference_outputs(record)
        return ([_flat(m) for m in record["input"]["messages"]]
                + _as_messages(preferred) + _as_messages(rejected, weight=1))
    return [{"role": "assistant", "content": record["text"]}]


def preference_conversations(record: dict) -> tuple[list[dict], list[dict], list | None]:
    """What DPO compares for a valid preference record: the prompt followed by the preferred
    output, the prompt followed by the non-preferred one, and the prompt's tools. Assistant turns
    inside the prompt are context (weight 0); the outputs are what is trained."""
    source = record["input"]
    context = [dict(_flat(m), weight=0) if m["role"] == "assistant" else _flat(m)
               for m in source["messages"]]
    preferred, rejected = preference_outputs(record)
    return context + _as_messages(preferred), context + _as_messages(rejected), source.get("tools")


def role_texts(record: dict, kind: str) -> list[tuple[str, str]]:
    """(role, text) of each message of conversation(record, kind), without copying messages:
    dedupe and the token screen read every example of a file, not a sample."""
    if kind == "chat":
        return _message_texts(record["messages"])
    if kind == "prompt_completion":
        return [("user", record["prompt"]), ("assistant", record["completion"])]
    if kind == "preference":
        preferred, rejected = preference_outputs(record)
        return (_message_texts(record["input"]["messages"]) + _output_texts(preferred)
                + _output_texts(rejected))
    return [("assistant", record["text"])]


def _message_texts(messages: list[dict]) -> list[tuple[str, str]]:
    return [(m["role"], text if type(text := m.get("content")) is str else content_text(text))
            for m in messages]


def _output_texts(value: object) -> list[tuple[str, str]]:
    return [("assistant", value)] if isinstance(value, str) else _message_texts(value)


def _flat(message: dict) -> dict:
    flat = dict(message)
    flat["content"] = content_text(message.get("content"))
    return flat


def _as_messages(value: object, weight: int = 1) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value, "weight": weight}]
    return [_flat(m) for m in value]
