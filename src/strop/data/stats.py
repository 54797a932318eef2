"""Token statistics of a training file and the readiness guidance drawn from them."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from strop.data.formats import conversation, detect_format
from strop.data.records import DataFileError, Record, as_records, lone_surrogate
from strop.data.tokens import TokenCounter, byte_bound

# Above this many examples, distributions come from a fixed random sample (exact totals for
# smaller files); over-context examples are still found exactly by a byte-length screen.
SAMPLE_LIMIT = 2_000  # totals then carry ~1-2% error (reported as a 95% margin)
BATCH = 1_000
FEW_EXAMPLES = 100
# A number, or a capitalised word in mid-sentence: cheap stand-ins for "facts" in an answer.
_FACT = re.compile(r"\b\d[\d,.:/-]*\d\b|\b\d\b|(?<=[a-z,;] )[A-Z][\w'-]+")


def distribution(values: Iterable[float]) -> dict:
    array = np.asarray(list(values), dtype=np.float64)
    if array.size == 0:
        return {"min": 0, "p5": 0, "median": 0, "p95": 0, "max": 0, "mean": 0}
    p5, median, p95 = np.percentile(array, [5, 50, 95])
    return {"min": int(array.min()), "p5": round(float(p5), 1), "median": round(float(median), 1),
            "p95": round(float(p95), 1), "max": int(array.max()), "mean": round(float(array.mean()), 1)}


def facts_absent_from_prompts(records: list[Record], kind: str) -> tuple[float, float]:
    """(share of fact-like tokens in replies that appear in no prompt message of their example,
    fact-like tokens per example)."""
    facts = novel = 0
    for record in records:
        messages = conversation(record.data, kind)
        prompt = " ".join(m["content"] for m in messages if m["role"] != "assistant").lower()
        for message in messages:
            if message["role"] != "assistant":
                continue
            for fact in _FACT.findall(message["content"]):
                facts += 1
                novel += fact.lower() not in prompt
    if kind == "text" or not records:
        return 0.0, 0.0
    return (novel / facts if facts else 0.0), facts / len(records)


def compute_stats(source: str | Path | Iterable[Record | dict], tokenizer, *,
                  context_length: int | None = None, kind: str | None = None,
                  exact: bool = False, sample_limit: int = SAMPLE_LIMIT,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """Token statistics of valid records (a path or records) with `tokenizer`'s chat template.

    `exact=True` counts every example; otherwise files above `sample_limit` examples are
    measured on a fixed random sample and totals are extrapolated (marked `"exact": false`).
    """
    records = as_records(source)
    kind = kind or detect_format(records) or "chat"
    counter = TokenCounter(tokenizer)
    n = len(records)
    sampled = not exact and n > sample_limit
    chosen = sorted(random.Random(0).sample(range(n), sample_limit)) if sampled else range(n)
    measured = [records[i] for i in chosen]
    counts = []
    for start in range(0, len(measured), BATCH):
        batch = measured[start:start + BATCH]
        counts.extend(_count(counter, batch, kind))
        if progress:
            progress(start + len(batch), len(measured))
    totals = [c.total for c in counts]
    scale = n / len(measured) if measured else 0.0

    over_lines: list[int] = []
    if context_length:
        if sampled:  # count exactly only what could possibly exceed the context
            by_line = {records[i].line: c.total for i, c in zip(chosen, counts)}
            suspects = [r for r in records if r.line not in by_line and
                        byte_bound(r.data, kind) + 64 > context_length]
            for start in range(0, len(suspects), BATCH):
                batch = suspects[start:start + BATCH]
                for record, count in zip(batch, _count(counter, batch, kind)):
                    by_line[record.line] = count.total
            over_lines = sorted(line for line, total in by_line.items() if total > context_length)
        else:
            over_lines = [r.line for r, c in zip(measured, counts) if c.total > context_length]

    fact_rate, facts_per_example = facts_absent_from_prompts(measured, kind)
    margin = 0
    if sampled and len(totals) > 1:  # 95% interval of the extrapolated total
        margin = round(1.96 * float(np.std(totals, ddof=1)) / len(totals) ** 0.5 * n
                       * ((n - len(totals)) / (n - 1)) ** 0.5)
    stats = {
        "format": kind,
        "examples": n,
        "counted_examples": len(measured),
        "exact": not sampled,
        "tokens": {
            "total": round(sum(totals) * scale),
            "prompt": round(sum(c.prompt for c in counts) * scale),
            "trained": round(sum(c.trained for c in counts) * scale),
            "total_margin_95": margin,  # 0 when every example was counted
        },
        "per_example": {"total": distribution(totals),
                        "trained": distribution(c.trained for c in counts)},
        "messages_per_example": distribution(c.messages for c in counts),
        "context_length": context_length,
        "over_context": len(over_lines),
        "over_context_lines": over_lines[:20],
        "facts_absent_from_prompts": round(fact_rate, 3),
        "facts_per_example": round(facts_per_example, 2),
        "system_prompt": shared_system_prompt(records, kind, counter),
        # examples the model's chat template refused to render; counted as plain text instead
        "template_failures": counter.template_failures,
    }
    stats["readiness"] = readiness(stats)
    return stats


def _count(counter: TokenCounter, batch: list[Record], kind: str) -> list:
    try:
        return counter.count([r.data for r in batch], kind)
    except (TypeError, UnicodeEncodeError):
        # Records from a file never get here with a lone surrogate (validation and
        # read_records refuse the line); records passed in memory might, and the tokenizer's
        # own error names neither the example nor the character.
        for record in batch:
            found = lone_surrogate(record.data)
            if found is not None:
                raise DataFileError(f"Line {record.line}: {found[1]}.", record.line) from None
        raise


def shared_system_prompt(records: list[Record], kind: str, counter: TokenCounter | None = None
                         ) -> dict | None:
    """The system prompt every example repeats, with what it costs per epoch; None if none."""
    if kind not in ("chat", "preference") or not records:
        return None
    first = _system_text(records[0].data, kind)
    if first is None or any(_system_text(r.data, kind) != first for r in records[1:]):
        return None
    if counter is not None:
        tokens, exact = counter.encode_lengths([first])[0], True
    else:
        tokens, exact = max(1, round(len(first) / 4)), False  # ~4 characters per token in English
    return {"tokens": tokens, "exact": exact, "examples": len(records),
            "tokens_per_epoch": tokens * len(records), "characters": len(first)}


def _system_text(record: dict, kind: str) -> str | None:
    messages = record["messages"] if kind == "chat" else record["input"]["messages"]
    first = messages[0]
    if first.get("role") != "system":
        return None
    content = first.get("content")
    return content if isinstance(content, str) else str(content)


def readiness(stats: dict) -> list[dict]:
    """Plain-language guidance from the numbers; each item has a level and a message."""
    advice = []
    n = stats["examples"]
    if n < FEW_EXAMPLES:
        advice.append({"level": "warning", "topic": "few_examples", "message": (
            f"Only {n} examples. Below about {FEW_EXAMPLES}, a well-written prompt with a few of "
            "these examples inline often does as well: fine-tuning needs enough examples to show "
            "a consistent pattern, and with few the model mostly memorises them. Try prompting "
            "first; fine-tune when you have 100+ (gains usually grow with each doubling).")})
    if stats["format"] != "text" and stats["facts_absent_from_prompts"] >= 0.5 \
            and stats["facts_per_example"] >= 1:
        share = round(100 * stats["facts_absent_from_prompts"])
        advice.append({"level": "warning", "topic": "knowledge", "message": (
            f"{share}% of the facts in the answers (numbers, names) appear nowhere in their "
            "prompts. Fine-tuning shapes behaviour (format, tone, style, following instructions) "
            "but is an unreliable way to add knowledge: the model will guess similar-looking "
            "facts. If the answers must be right, retrieve the facts at question time (RAG) and "
            "put them in the prompt; fine-tune on examples that use the retrieved context.")})
    if stats["over_context"]:
        advice.append({"level": "warning", "topic": "over_context", "message": (
            f"{stats['over_context']} examples exceed the {stats['context_length']}-token "
            "context and will be truncated from the end, losing the replies that end them.")})
    tokens = stats["tokens"]
    if tokens["total"] and tokens["trained"] / tokens["total"] < 0.1 and stats["format"] != "text":
        advice.append({"level": "info", "topic": "trained_share", "message": (
            f"Only {100 * tokens['trained'] / tokens['total']:.0f}% of the tokens are trained on; "
            "the rest is prompt you pay to process every epoch. Shorter shared instructions "
            "make training cheaper.")})
    if stats.get("template_failures"):
        advice.append({"level": "warning", "topic": "template", "message": (
            f"The model's chat template refused {stats['template_failures']} examples (often a "
            "role order it does not allow, such as two user messages in a row); training will "
            "fail on them. Check them with the model's template or choose another model.")})
    if not advice:
        advice.append({"level": "ok", "topic": "ready", "message": (
            f"{n} examples, {tokens['trained']:,} trained tokens: ready to fine-tune. Keep a "
            "held-out split to see whether it generalises.")})
    return advice
