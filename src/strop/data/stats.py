"""Token statistics of a training file and the readiness guidance drawn from them."""

from __future__ import annotations

import json
import random
import re
from array import array
from itertools import chain
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from strop.data.formats import conversation, detect_format
from strop.data.records import (DataFileError, Record, as_records, lone_surrogate,
                                raw_lines_at)
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


class _FactTally:
    """Fact-like tokens in replies, and how many appear in no prompt message of their example."""

    def __init__(self, kind: str):
        self.kind, self.facts, self.novel, self.examples = kind, 0, 0, 0

    def add(self, records: Iterable[Record]) -> None:
        for record in records:
            self.examples += 1
            messages = conversation(record.data, self.kind)
            prompt = " ".join(m["content"] for m in messages if m["role"] != "assistant").lower()
            for message in messages:
                if message["role"] != "assistant":
                    continue
                for fact in _FACT.findall(message["content"]):
                    self.facts += 1
                    self.novel += fact.lower() not in prompt

    def shares(self) -> tuple[float, float]:
        """(share of facts absent from their prompts, facts per example)."""
        if self.kind == "text" or not self.examples:
            return 0.0, 0.0
        return (self.novel / self.facts if self.facts else 0.0), self.facts / self.examples


def sample_positions(n: int, exact: bool, sample_limit: int) -> range | list[int]:
    """Positions (ascending) of the examples measured: all, or a fixed random sample."""
    if exact or n <= sample_limit:
        return range(n)
    return sorted(random.Random(0).sample(range(n), sample_limit))


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
    chosen = sample_positions(len(records), exact, sample_limit)
    tagged: Iterable[tuple[Record, bool]] = ((records[i], True) for i in chosen)
    if context_length and len(chosen) < len(records):
        # count exactly only what could possibly exceed the context
        measured = set(chosen)
        tagged = chain(tagged, ((r, False) for i, r in enumerate(records) if i not in measured
                                and byte_bound(r.data, kind) + 64 > context_length))
    counter = TokenCounter(tokenizer)
    system = shared_system_text(records, kind)
    return _measure(counter, kind, len(records), len(chosen), tagged, context_length,
                    system_prompt_cost(system, len(records), counter), progress)


def file_stats(path: str | Path, lines: Sequence[int], kind: str, system_prompt: str | None,
               tokenizer, *, context_length: int | None = None, exact: bool = False,
               sample_limit: int = SAMPLE_LIMIT,
               progress: Callable[[int, int], None] | None = None) -> dict:
    """compute_stats of the valid records on `lines` (ascending) of a checked file, read again
    from the file (only the sample, and the lines long enough to possibly exceed the context),
    so that memory does not grow with the file. `system_prompt` is the one every example
    repeats, if any."""
    chosen = sample_positions(len(lines), exact, sample_limit)
    sampled = len(chosen) < len(lines)
    measured_lines = {lines[i] for i in chosen} if sampled else None

    def tagged() -> Iterator[tuple[Record, bool]]:
        loads = json.loads
        for number, raw in raw_lines_at(path, lines):
            measured = measured_lines is None or number in measured_lines
            # a line's bytes bound its texts' bytes (escapes only lengthen them, and every
            # message has a role besides its content), so most lines skip the parse
            if measured or (context_length and len(raw) + 64 > context_length):
                data = loads(raw)
                if measured or byte_bound(data, kind) + 64 > context_length:
                    yield Record(number, data), measured

    counter = TokenCounter(tokenizer)
    return _measure(counter, kind, len(lines), len(chosen), tagged(), context_length,
                    system_prompt_cost(system_prompt, len(lines), counter), progress)


def _measure(counter: TokenCounter, kind: str, n: int, n_measured: int,
             tagged: Iterable[tuple[Record, bool]], context_length: int | None,
             system_prompt: dict | None, progress: Callable[[int, int], None] | None) -> dict:
    """The statistics of `n` examples from the token counts of `tagged` (record, whether it is
    one of the `n_measured` measured; the others are only screened against the context)."""
    totals, trained, messages = array("q"), array("q"), array("q")
    over_lines: list[int] = []
    facts = _FactTally(kind)
    batch: list[tuple[Record, bool]] = []
    for item in chain(tagged, [None]):
        if item is not None:
            batch.append(item)
            if len(batch) < BATCH:
                continue
        if not batch:
            break
        counts = _count(counter, [record for record, _ in batch], kind)
        for (record, measured), count in zip(batch, counts):
            if measured:
                totals.append(count.total)
                trained.append(count.trained)
                messages.append(count.messages)
            if context_length and count.total > context_length:
                over_lines.append(record.line)
        facts.add(record for record, measured in batch if measured)
        batch = []
        if progress:
            progress(len(totals), n_measured)
    over_lines.sort()
    sampled = n_measured < n
    scale = n / n_measured if n_measured else 0.0
    fact_rate, facts_per_example = facts.shares()
    margin = 0
    if sampled and len(totals) > 1:  # 95% interval of the extrapolated total
        margin = round(1.96 * float(np.std(totals, ddof=1)) / len(totals) ** 0.5 * n
                       * ((n - len(totals)) / (n - 1)) ** 0.5)
    total_tokens, trained_tokens = sum(totals), sum(trained)
    stats = {
        "format": kind,
        "examples": n,
        "counted_examples": n_measured,
        "exact": not sampled,
        "tokens": {
            "total": round(total_tokens * scale),
            "prompt": round((total_tokens - trained_tokens) * scale),
            "trained": round(trained_tokens * scale),
            "total_margin_95": margin,  # 0 when every example was counted
        },
        "per_example": {"total": distribution(totals), "trained": distribution(trained)},
        "messages_per_example": distribution(messages),
        "context_length": context_length,
        "over_context": len(over_lines),
        "over_context_lines": over_lines[:20],
        "facts_absent_from_prompts": round(fact_rate, 3),
        "facts_per_example": round(facts_per_example, 2),
        "system_prompt": system_prompt,
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
    return system_prompt_cost(shared_system_text(records, kind), len(records), counter)


def shared_system_text(records: list[Record], kind: str) -> str | None:
    """The system prompt every example repeats, if any."""
    if kind not in ("chat", "preference") or not records:
        return None
    first = system_text(records[0].data, kind)
    if first is None or any(system_text(r.data, kind) != first for r in records[1:]):
        return None
    return first


def system_prompt_cost(text: str | None, examples: int, counter: TokenCounter | None
                        ) -> dict | None:
    if text is None:
        return None
    if counter is not None:
        tokens, exact = counter.encode_lengths([text])[0], True
    else:
        tokens, exact = max(1, round(len(text) / 4)), False  # ~4 characters per token in English
    return {"tokens": tokens, "exact": exact, "examples": examples,
            "tokens_per_epoch": tokens * examples, "characters": len(text)}


def system_text(record: dict, kind: str) -> str | None:
    """The example's system prompt (chat and preference records), None when it has none."""
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
