"""Token counts per example with the model's own tokenizer and chat template.

For each example: `total` tokens the model sees, `trained` tokens the loss is computed on
(assistant replies with weight 1, each with its end-of-turn marker; the completion of a
prompt/completion pair plus EOS; all of a plain-text document plus EOS; both responses of a
preference pair), and `prompt` = total - trained. A preference pair is seen twice by DPO (prompt
with each response), so its total counts the prompt twice.

The counts are the training mask's (masking.py), computed faster: conversations are rendered by
the same `template_messages` and `render` and encoded in batches, and a reply's trained tokens
are its content plus what the template writes around it that the mask trains (the end-of-turn
marker, Mistral's leading space). Where a template writes tool calls in its own markup, which
no content string shows, the example is tokenized exactly as training does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from strop.data.formats import preference_conversations, role_texts
from strop.data.masking import render, renders_tool_calls, template_messages, tokenize_chat

_PROBE = "\u2063probe\u2063"  # a string no template adds on its own


@dataclass(slots=True)
class TokenCount:
    total: int
    prompt: int
    trained: int
    messages: int


class TokenCounter:
    """Counts tokens of valid records; encodes in batches through the fast (Rust) tokenizer."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._backend = getattr(tokenizer, "_tokenizer", None)  # tokenizers.Tokenizer when fast
        self.has_template = bool(getattr(tokenizer, "chat_template", None))
        self.template_renders_calls = renders_tool_calls(tokenizer)
        self.turn_lead, self.turn_suffix = (self._assistant_turn_edges() if self.has_template
                                            else ("", 0))
        self.eos = 1 if getattr(tokenizer, "eos_token_id", None) is not None else 0
        self.template_failures = 0  # examples the chat template refused (counted as plain text)

    def encode_lengths(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        if self._backend is not None:  # the fast variant skips the offsets a count never reads
            return list(map(len, self._backend.encode_batch_fast(texts, add_special_tokens=False)))
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def render(self, messages: list[dict], tools: list | None = None,
               generation_prompt: bool = False) -> str:
        if not self.has_template:  # base models without a template: role-tagged plain text
            return _plain_text(messages) + ("assistant: " if generation_prompt else "")
        return render(self.tokenizer, messages, tools, add_generation_prompt=generation_prompt)

    def _assistant_turn_edges(self) -> tuple[str, int]:
        """What the template writes around an assistant reply's content that the mask trains:
        text after the generation prompt and before the content (Mistral's space), and the
        tokens of the end-of-turn marker after it (e.g. `<|im_end|>`)."""
        user = [{"role": "user", "content": "hi"}]
        try:
            prompt = self.render(user, generation_prompt=True)
            text = self.render(user + [{"role": "assistant", "content": _PROBE}])
        except Exception:  # templates that refuse the probe: count the content alone
            return "", 0
        at = text.rfind(_PROBE)
        lead = text[len(os.path.commonprefix([prompt, text[:at]])):at]
        # Whitespace after the end-of-turn marker is never predicted (the mask drops it too),
        # so only the marker itself counts.
        tail = text[at + len(_PROBE):].rstrip()
        return lead, self.encode_lengths([tail])[0] if tail else 0

    def count(self, records: list[dict], kind: str) -> list[TokenCount]:
        """Token counts for valid records of one format, in order."""
        if kind == "prompt_completion":
            prompts = self.encode_lengths([r["prompt"] for r in records])
            completions = self.encode_lengths([r["completion"] for r in records])
            return [TokenCount(p + c + self.eos, p, c + self.eos, 2)
                    for p, c in zip(prompts, completions)]
        if kind == "text":
            lengths = self.encode_lengths([r["text"] for r in records])
            return [TokenCount(n + self.eos, 0, n + self.eos, 1) for n in lengths]
        if kind == "preference":
            return self._count_preference(records)
        return self._count_chat(records)

    def _count_chat(self, records: list[dict]) -> list[TokenCount]:
        counts = self._count_conversations([(r["messages"], r.get("tools")) for r in records])
        return [TokenCount(total, total - trained, trained, len(record["messages"]))
                for record, (total, trained) in zip(records, counts)]

    def _count_preference(self, records: list[dict]) -> list[TokenCount]:
        conversations = []
        for record in records:
            chosen, rejected, tools = preference_conversations(record)
            conversations += [(chosen, tools), (rejected, tools)]
        counts = self._count_conversations(conversations)
        result = []
        for index, record in enumerate(records):
            (chosen_total, chosen_trained), (rejected_total, rejected_trained) = \
                counts[2 * index], counts[2 * index + 1]
            total, trained = chosen_total + rejected_total, chosen_trained + rejected_trained
            result.append(TokenCount(total, total - trained, trained,
                                     len(record["input"]["messages"]) + 2))
        return result

    def _count_conversations(self, conversations: list[tuple[list[dict], list | None]]
                             ) -> list[tuple[int, int]]:
        """(total, trained) tokens of each (messages, tools) conversation."""
        rendered, trained_texts, owners = [], [], []
        exact: dict[int, tuple[int, int]] = {}
        for index, (messages, tools) in enumerate(conversations):
            messages = template_messages(self.tokenizer, messages)
            text = None
            try:
                if self.template_renders_calls and any(m.get("tool_calls") for m in messages):
                    tokens = tokenize_chat(self.tokenizer, messages, tools)
                    exact[index] = (len(tokens), sum(tokens.trained))
                else:
                    text = self.render(messages, tools)
            except Exception:  # e.g. templates that raise on a role order they do not allow
                self.template_failures += 1
                text = _plain_text(messages)
            rendered.append(text or "")
            if text is None:
                continue
            for message in messages:
                if message["role"] == "assistant" and message.get("weight", 1) == 1:
                    trained_texts.append(self.turn_lead + message["content"])
                    owners.append(index)
        totals = self.encode_lengths(rendered)
        trained = [0] * len(conversations)
        for owner, length in zip(owners, self.encode_lengths(trained_texts)):
            trained[owner] += length + self.turn_suffix
        counts = [(total, min(t, total)) for total, t in zip(totals, trained)]
        for index, count in exact.items():
            counts[index] = count
        return counts


def _plain_text(messages: list[dict]) -> str:
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages)


def byte_bound(record: dict, kind: str) -> int:
    """An upper bound on an example's content tokens: a byte-level or byte-fallback tokenizer
    never emits more tokens than bytes (plus a couple per message for markers). Cheap on
    purpose: it screens every example of a large file."""
    total = 0
    for _, text in role_texts(record, kind):
        total += (len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))) + 2
    return total
