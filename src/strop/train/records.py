"""Read a training file into token sequences for one method.

Each line's format and validity come from the data toolkit (strop.data.formats), the same
definition `strop data check` and the upload check apply, so training refuses exactly what
validation refuses, naming the line and the fix; the CLI can be pointed at any file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from strop.data.formats import detect_format, preference_conversations, unrecognised, validate_record
from strop.data.masking import (
    TemplateError,
    Tokenized,
    tokenize_chat,
    tokenize_prompt_completion,
    tokenize_text,
)
from strop.data.records import DataFileError, Record, as_records, read_records
from strop.data.report import Finding
from strop.train.config import TrainingError


@dataclass
class PreferencePair:
    """One DPO example: a shared prompt and two continuations, each with its trained mask."""

    chosen: Tokenized
    rejected: Tokenized


def read_jsonl(path: Path, param: str = "training_file") -> list[Record]:
    """The file's records with their line numbers, read exactly as validation read them (BOM
    and blank lines skipped, invalid UTF-8 named by its byte offset), with failures as
    TrainingError."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"{path}: no such file", "invalid_file", param)
    try:
        return read_records(path)
    except DataFileError as exc:
        raise TrainingError(f"{path.name}: {exc}", "invalid_file", param) from None


ACCEPTED = {
    "supervised": {"chat", "prompt_completion"},
    "dpo": {"preference"},
    "pretrain": {"text", "chat", "prompt_completion"},
}


def tokenize_records(records: list[Record | dict], tokenizer, method: str, file_name: str,
                     param: str = "training_file") -> list:
    """Tokenized examples (or PreferencePairs for DPO), in file order; plain dicts are numbered
    as lines from 1."""
    examples = []
    for record in as_records(records):
        kind = _trainable_kind(record.data, method)
        if isinstance(kind, Finding):
            raise TrainingError(f"{file_name}: {kind.at_line(record.line)} {kind.hint}",
                                "invalid_file", param)
        where = f"{file_name}: Line {record.line}"
        try:
            examples.append(_tokenize(record.data, kind, tokenizer, method, where))
        except TemplateError as exc:
            raise TrainingError(f"{where}: {exc}", "invalid_file", param) from None
    return examples


def _trainable_kind(data: object, method: str) -> str | Finding:
    """The record's format, or the first reason it cannot be trained on with `method`."""
    if not isinstance(data, dict):
        return Finding("not_an_object", None, "expected a JSON object",
                       'Wrap the example in an object, e.g. {"messages": [...]}.')
    kind = detect_format(data)
    if kind is None:
        return unrecognised(data)
    if kind not in ACCEPTED[method]:
        wanted = " or ".join(sorted(ACCEPTED[method]))
        return Finding("wrong_method", None,
                       f"a {kind} example cannot be used for method '{method}' "
                       f"(expected {wanted})",
                       "Train with the method this data is for, or convert the example.")
    # Continued pretraining trains every token, so a chat needs no assistant reply there.
    findings = [f for f in validate_record(data, kind)
                if not (method == "pretrain" and f.check == "no_assistant_message")]
    return findings[0] if findings else kind


def _tokenize(record: dict, kind: str, tokenizer, method: str, where: str):
    if kind == "preference":
        chosen, rejected, tools = preference_conversations(record)
        return PreferencePair(tokenize_chat(tokenizer, chosen, tools),
                              tokenize_chat(tokenizer, rejected, tools))
    if kind == "chat":
        tokens = tokenize_chat(tokenizer, record["messages"], record.get("tools"))
        if method == "pretrain":
            tokens = Tokenized(tokens.input_ids, [True] * len(tokens))
        elif not any(tokens.trained):
            raise TrainingError(f"{where}: the chat template leaves no assistant token to "
                                "train on", "invalid_file")
        return tokens
    if kind == "prompt_completion":
        tokens = tokenize_prompt_completion(tokenizer, record["prompt"], record["completion"])
        if method == "pretrain":
            tokens = Tokenized(tokens.input_ids, [True] * len(tokens))
        return tokens
    return tokenize_text(tokenizer, record["text"])


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
