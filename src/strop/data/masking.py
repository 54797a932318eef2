"""Which tokens carry loss: assistant spans of a chat, the completion of a prompt/completion pair.

This is what training trains on and what the token counts (tokens.py) count, so it lives with the
data: `template_messages` is the one rendering of a conversation (content parts joined, tool
calls as the template writes them or, where it cannot, as JSON in the content) that both use.

Chat templates rarely mark the assistant's part (`{% generation %}` is uncommon), so the spans
are found by rendering prefixes: the text a template adds for assistant message i is
render(messages[:i+1]) minus render(messages[:i], add_generation_prompt=True). That works for
any template that renders a conversation as a growing string (ChatML, Llama 3, Mistral, Qwen,
Gemma, ...). The span keeps the end-of-turn token, so the model learns to stop, and drops the
whitespace a template puts after it, which the model never has to produce.

Every function here returns `Tokenized(input_ids, trained)`: `trained[t]` says whether token t
is a target. Shifting into next-token labels happens later, per example, so packing can never
make one example predict another's first token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from strop.data.messages import content_text


@dataclass
class Tokenized:
    input_ids: list[int]
    trained: list[bool]

    def __len__(self) -> int:
        return len(self.input_ids)

    def truncated(self, length: int) -> "Tokenized":
        return Tokenized(self.input_ids[:length], self.trained[:length])


class TemplateError(ValueError):
    """A conversation the chat template cannot render in a way spans can be found in."""


def render(tokenizer, messages: list[dict], tools=None, add_generation_prompt: bool = False) -> str:
    """The chat template's text for template-ready messages (see template_messages)."""
    kwargs = {"tools": tools} if tools else {}
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
    )


def assistant_spans(tokenizer, messages: list[dict], tools=None) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its trained assistant turns."""
    full = render(tokenizer, messages, tools, add_generation_prompt=False)
    spans: list[tuple[int, int]] = []
    cursor = 0
    for index, message in enumerate(messages):
        if message.get("role") != "assistant" or message.get("weight", 1) == 0:
            continue
        before = render(tokenizer, messages[:index], tools, add_generation_prompt=True)
        through = render(tokenizer, messages[: index + 1], tools, add_generation_prompt=False)
        if not through.startswith(before):
            # Some templates render the generation prompt differently from a finished turn
            # (e.g. a trailing space); fall back to the longest common prefix.
            common = 0
            for a, b in zip(before, through):
                if a != b:
                    break
                common += 1
            before = through[:common]
        added = through[len(before):].rstrip(" \n\t\r")
        if not added:
            continue
        start = full.find(added, cursor)
        if start < 0:
            raise TemplateError(
                f"message {index}: the chat template renders this assistant turn differently "
                "inside the whole conversation than on its own, so its tokens cannot be located"
            )
        spans.append((start, start + len(added)))
        cursor = start + len(added)
    return full, spans


def renders_tool_calls(tokenizer) -> bool:
    """Whether the chat template writes assistant tool calls itself (Qwen, Llama 3.1, ...)."""
    return "tool_calls" in (getattr(tokenizer, "chat_template", None) or "")


def template_messages(tokenizer, messages: list[dict]) -> list[dict]:
    """The messages as the chat template gets them: string content for every message (OpenAI
    allows lists of text parts), a legacy `function_call` as the one tool call it is, and tool
    calls kept for templates that render them; for templates that do not, they are written
    into the content as JSON, so the model still learns to produce them."""
    renders_calls = renders_tool_calls(tokenizer)
    prepared = []
    for message in messages:
        message = dict(message, content=content_text(message.get("content")))
        if message.get("function_call"):
            message["tool_calls"] = [{"type": "function", "function": message.pop("function_call")}]
        if message.get("tool_calls") and not renders_calls:
            calls = json.dumps([c.get("function", c) for c in message.pop("tool_calls")])
            message["content"] = (message["content"] + "\n" + calls).strip()
        prepared.append(message)
    return prepared


def tokenize_chat(tokenizer, messages: list[dict], tools=None) -> Tokenized:
    text, spans = assistant_spans(tokenizer, template_messages(tokenizer, messages), tools)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    trained = []
    for start, _end in encoded["offset_mapping"]:
        # A token belongs to a span when it begins inside it; byte-level BPE can glue a
        # prompt's trailing whitespace onto the first answer token, which then still counts
        # as answer because generation would produce it.
        trained.append(any(lo <= start < hi for lo, hi in spans))
    return Tokenized(list(encoded["input_ids"]), trained)


def end_of_text_id(tokenizer) -> int:
    if tokenizer.eos_token_id is None:
        raise TemplateError("the tokenizer has no EOS token, so a completion cannot end")
    return int(tokenizer.eos_token_id)


def tokenize_prompt_completion(tokenizer, prompt: str, completion: str) -> Tokenized:
    """Raw text, as OpenAI's legacy format is: loss on the completion and the EOS after it."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    ids = list(prompt_ids) + list(completion_ids) + [end_of_text_id(tokenizer)]
    return Tokenized(ids, [False] * len(prompt_ids) + [True] * (len(completion_ids) + 1))


def tokenize_text(tokenizer, text: str) -> Tokenized:
    """Plain text for continued pretraining: every token is a target, EOS closes the document."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"]) + [end_of_text_id(tokenizer)]
    return Tokenized(ids, [True] * len(ids))
