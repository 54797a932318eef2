"""Read a training file into token sequences for one method.

The data toolkit validates files thoroughly before a job starts; this module only needs to
recognise each line's format and turn it into tokens, and it still refuses what it cannot
train on with the line number, because the CLI can be pointed at any file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from strop.train.config import TrainingError
from strop.train.masking import (
    TemplateError,
    Tokenized,
    tokenize_chat,
    tokenize_prompt_completion,
    tokenize_text,
)


@dataclass
class PreferencePair:
    """One DPO example: a shared prompt and two continuations, each with its trained mask."""

    chosen: Tokenized
    rejected: Tokenized


def read_jsonl(path: Path, param: str = "training_file") -> list[dict]:
    """The file's records, read exactly as validation read them (BOM and blank lines skipped,
    invalid UTF-8 named by its byte offset), with failures as TrainingError."""
    from strop.data.records import DataFileError, read_records

    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"{path}: no such file", "invalid_file", param)
    try:
        return [record.data for record in read_records(path)]
    except DataFileError as exc:
        raise TrainingError(f"{path.name}: {exc}", "invalid_file", param) from None


def _assistant_turns(output, where: str) -> list[dict]:
    if isinstance(output, str):
        return [{"role": "assistant", "content": output}]
    if isinstance(output, list) and all(isinstance(m, dict) for m in output):
        return [dict(m, role=m.get("role", "assistant")) for m in output]
    raise TrainingError(f"{where}: expected a list of assistant messages or a string",
                        "invalid_file")


def _preference_parts(record: dict, where: str) -> tuple[list[dict], list, list]:
    if "preferred_output" in record:
        prompt = (record.get("input") or {}).get("messages")
        chosen, rejected = record["preferred_output"], record.get("non_preferred_output")
    else:
        prompt = (record.get("input") or {}).get("messages") or record.get("prompt")
        chosen, rejected = record["preferred_completion"], record.get("non_preferred_completion")
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not prompt:
        raise TrainingError(f"{where}: preference example needs input.messages", "invalid_file")
    if rejected is None:
        raise TrainingError(f"{where}: preference example needs a non-preferred output",
                            "invalid_file")
    return prompt, _assistant_turns(chosen, where), _assistant_turns(rejected, where)


def record_kind(record: dict) -> str:
    if "preferred_output" in record or "preferred_completion" in record:
        return "preference"
    if "messages" in record:
        return "chat"
    if "prompt" in record and "completion" in record:
        return "prompt_completion"
    if "text" in record:
        return "text"
    return "unknown"


ACCEPTED = {
    "supervised": {"chat", "prompt_completion"},
    "dpo": {"preference"},
    "pretrain": {"text", "chat", "prompt_completion"},
}


def tokenize_records(records: list[dict], tokenizer, method: str, file_name: str,
                     param: str = "training_file") -> list:
    """Tokenized examples (or PreferencePairs for DPO), in file order."""
    examples = []
    for number, record in enumerate(records, start=1):
        where = f"{file_name} example {number}"
        kind = record_kind(record)
        if kind not in ACCEPTED[method]:
            wanted = " or ".join(sorted(ACCEPTED[method]))
            raise TrainingError(
                f"{where}: a {kind} record cannot be used for method '{method}' "
                f"(expected {wanted})", "invalid_file", param)
        try:
            examples.append(_tokenize(record, kind, tokenizer, method, where))
        except TemplateError as exc:
            raise TrainingError(f"{where}: {exc}", "invalid_file", param) from None
    return examples


def _tokenize(record: dict, kind: str, tokenizer, method: str, where: str):
    if kind == "preference":
        prompt, chosen, rejected = _preference_parts(record, where)
        for message in chosen + rejected:
            message.setdefault("weight", 1)
        context = [dict(m, weight=0) if m.get("role") == "assistant" else m for m in prompt]
        tools = record.get("tools") or (record.get("input") or {}).get("tools")
        return PreferencePair(tokenize_chat(tokenizer, context + chosen, tools),
                              tokenize_chat(tokenizer, context + rejected, tools))
    if kind == "chat":
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            raise TrainingError(f"{where}: messages must be a non-empty list", "invalid_file")
        tokens = tokenize_chat(tokenizer, messages, record.get("tools"))
        if method == "pretrain":
            tokens = Tokenized(tokens.input_ids, [True] * len(tokens))
        elif not any(tokens.trained):
            raise TrainingError(f"{where}: no assistant message with weight 1 to train on",
                                "invalid_file")
        return tokens
    if kind == "prompt_completion":
        tokens = tokenize_prompt_completion(tokenizer, str(record["prompt"]),
                                            str(record["completion"]))
        if method == "pretrain":
            tokens = Tokenized(tokens.input_ids, [True] * len(tokens))
        return tokens
    text = record["text"]
    if not isinstance(text, str) or not text.strip():
        raise TrainingError(f"{where}: text must be a non-empty string", "invalid_file")
    return tokenize_text(tokenizer, text)


def pack_documents(documents: list[Tokenized], block_length: int) -> list[list[Tokenized]]:
    """Continued pretraining: documents laid end to end and cut into blocks of `block_length`
    tokens, so long documents are split rather than truncated. A block is a list of
    document pieces; each piece keeps its own positions, so pieces never attend to each other."""
    blocks: list[list[Tokenized]] = []
    current: list[Tokenized] = []
    room = block_length
    for document in documents:
        ids, trained = document.input_ids, document.trained
        while ids:
            piece = Tokenized(ids[:room], trained[:room])
            current.append(piece)
            ids, trained = ids[room:], trained[room:]
            room -= len(piece)
            if room == 0:
                blocks.append(current)
                current, room = [], block_length
    if current:
        blocks.append(current)
    return blocks
