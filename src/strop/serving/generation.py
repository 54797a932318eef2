"""Chat-template rendering and token-by-token generation with a KV cache.

The loop is written out rather than delegated to `generate()`: the server needs to stream, stop
on strings, stop when a client disconnects and count usage. Each step runs through
strop.serving.decoder's written-out forward where the architecture allows it, and through the model's
own forward with a KV cache otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

StopCheck = Callable[[], bool]


@dataclass
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    seed: int | None = None
    stop: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if not 0 <= self.temperature <= 2:
            raise ValueError(f"temperature must be between 0 and 2, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (EOS or stop string) or "length"


def render_chat(tokenizer, messages: list[dict], add_generation_prompt: bool = True) -> list[int]:
    """Token ids of `messages` rendered with the tokenizer's own chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("This tokenizer has no chat template; it cannot be used for chat.")
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=add_generation_prompt, tokenize=True, return_dict=False
    )
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    return list(ids)


def stop_token_ids(model, tokenizer) -> set[int]:
    """EOS ids from the tokenizer and the generation config (chat models often have several)."""
    ids: set[int] = set()
    for source in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(source)
    return ids


def _sample(logits, params: SamplingParams, generator):
    import torch

    if params.temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < params.top_p
        sorted_probs = sorted_probs * keep
        choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
        return int(order[choice])
    return int(torch.multinomial(probs, 1, generator=generator))


class _TransformersSession:
    """The model's own forward with a growing cache: for architectures strop.serving.decoder refuses."""

    def __init__(self, model):
        from transformers import DynamicCache

        self.model = model
        self.cache = DynamicCache()

    def forward(self, token_ids: list[int]):
        return self.logits(token_ids, 1)[0]

    def logits(self, token_ids: list[int], keep: int):
        import torch

        with torch.inference_mode():
            output = self.model(input_ids=torch.tensor([token_ids]), past_key_values=self.cache,
                                use_cache=True, logits_to_keep=keep)
        return output.logits[0].float()


def decode_session(model, capacity: int):
    """A generation of at most `capacity` tokens: `forward(ids)` feeds tokens and returns the
    last one's logits (`logits(ids, keep)`: the last `keep` tokens'). Uses the written-out
    decoder (strop.serving.decoder) when the model allows it.
    The decoder is rebuilt for every generation (about a millisecond) so that it always sees
    the model's current modules."""
    from strop.serving.decoder import Decoder, UnsupportedModel

    try:
        return Decoder(model).session(capacity)
    except UnsupportedModel:
        return _TransformersSession(model)


def prompt_logits(model, token_ids: list[int], keep: int):
    """The float32 logits of the last `keep` tokens of `token_ids` (row i predicts the token
    after position len - keep + i), computed the way a generation processes its prompt: what
    evaluation scores reference answers with."""
    return decode_session(model, len(token_ids)).logits(token_ids, keep)


def generate_token_ids(model, prompt_ids: list[int], params: SamplingParams,
                       eos_ids: set[int], should_stop: StopCheck | None = None) -> Iterator[int]:
    """Yield new token ids one at a time; stops at EOS (not yielded), at max_tokens, or as soon
    as `should_stop()` returns True (checked before every forward pass, so an abandoned request
    costs at most one more token)."""
    import torch

    generator = torch.Generator()
    generator.manual_seed(params.seed if params.seed is not None else torch.seed())
    session = decode_session(model, len(prompt_ids) + params.max_tokens)
    inputs = list(prompt_ids)
    for _ in range(params.max_tokens):
        if should_stop is not None and should_stop():
            return
        token = _sample(session.forward(inputs), params, generator)
        if token in eos_ids:
            return
        yield token
        inputs = [token]


def stream_chat(model, tokenizer, messages: list[dict], params: SamplingParams,
                stats: dict | None = None, should_stop: StopCheck | None = None,
                prompt_ids: list[int] | None = None) -> Iterator[str]:
    """Yield text pieces of the assistant's reply; fills `stats` with usage when done.

    `prompt_ids` skips rendering when the caller already has them; `should_stop` aborts the
    generation between tokens (finish_reason "cancelled", never sent to a client).

    Text is decoded incrementally from the whole completion so that multi-byte characters split
    across tokens come out whole, and stop strings are held back until they can be ruled out.
    """
    if prompt_ids is None:
        prompt_ids = render_chat(tokenizer, messages)
    eos_ids = stop_token_ids(model, tokenizer)
    generated: list[int] = []
    emitted = 0
    finish_reason = "length"
    holdback = max((len(stop) for stop in params.stop), default=0)
    for token in generate_token_ids(model, prompt_ids, params, eos_ids, should_stop):
        generated.append(token)
        text = tokenizer.decode(generated, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            continue  # an incomplete UTF-8 sequence; wait for the next token
        hits = [position for stop in params.stop if (position := text.find(stop)) >= 0]
        if hits:
            hit = min(hits)
            if hit > emitted:
                yield text[emitted:hit]
            finish_reason = "stop"
            break
        safe_end = len(text) - holdback
        if safe_end > emitted:
            yield text[emitted:safe_end]
            emitted = safe_end
    else:
        if should_stop is not None and should_stop():
            finish_reason = "cancelled"
        elif len(generated) < params.max_tokens:
            finish_reason = "stop"
        text = tokenizer.decode(generated, skip_special_tokens=True)
        if len(text) > emitted:
            yield text[emitted:]
    if stats is not None:
        stats.update(prompt_tokens=len(prompt_ids), completion_tokens=len(generated),
                     finish_reason=finish_reason)


def complete_chat(model, tokenizer, messages: list[dict], params: SamplingParams) -> Completion:
    stats: dict = {}
    text = "".join(stream_chat(model, tokenizer, messages, params, stats))
    return Completion(text, stats["prompt_tokens"], stats["completion_tokens"],
                      stats["finish_reason"])
