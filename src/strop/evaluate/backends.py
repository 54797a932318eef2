"""What an evaluation talks to: a model served in this process, or any OpenAI-compatible endpoint.

Both answer `generate(conversations, budgets)` with greedy decoding. A local model is served by
a strop.serving.Engine, so it generates the way the server does (the same decoder, serving
precision and adapter merge): what the evaluation measures is what users are served. It also
scores reference answers (`reference_scores`: loss and token accuracy), which an endpoint
cannot, with the logits the engine computes for prompt + reference as a prompt: float32
activations over the serving-precision weights, the arithmetic of a served request.

Prompts and references go one at a time through the written-out decoder. On a memory-bound CPU
that is faster than batched `generate()` for a small model, which spends most of a step outside
the arithmetic, and than a batched forward in bfloat16, which this CPU multiplies slowly.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from strop.serving import Engine
from strop.serving.generation import SamplingParams, prompt_logits, render_chat, stop_token_ids

Progress = Callable[[str], None] | None


@dataclass
class ReferenceScore:
    loss_sum: float  # summed cross-entropy over the reference tokens
    tokens: int  # reference tokens scored
    correct: int  # reference tokens the model ranks first (greedy)


class LocalModel:
    """Model `model` (any name `engine`'s resolver knows) evaluated through `engine`; `label`
    is how results name it (default `model`). Base and tuned models share one engine, so an
    adapter is merged over the one copy of its base weights that the base is evaluated with."""

    def __init__(self, engine: Engine, model: str, label: str | None = None):
        self.engine = engine
        self.model = model
        self.name = label or model
        self._tokenizer = None

    @property
    def tokenizer(self):
        """The tokenizer the model is served with (the adapter's own when it has one)."""
        if self._tokenizer is None:
            with self.engine.hold(self.model) as weights:
                self._tokenizer = weights.tokenizer
        return self._tokenizer

    def describe(self) -> dict:
        return {"name": self.name, "kind": "local", "dtype": self.engine.settings.dtype}

    @staticmethod
    def _prompt_ids(weights, messages: list[dict], budget: int) -> list[int]:
        ids = weights.render(messages)
        room = weights.context_length - budget
        if room < 1:
            raise ValueError(f"max_new_tokens {budget} leaves no room for the prompt in a "
                             f"context of {weights.context_length} tokens")
        return ids[-room:]  # keep the end: the question and the generation prompt

    def generate(self, conversations: list[list[dict]], budgets: list[int],
                 progress: Progress = None) -> list[str]:
        outputs: list[str] = []
        with self.engine.hold(self.model) as weights:
            for number, (messages, budget) in enumerate(zip(conversations, budgets), 1):
                params = SamplingParams(max_tokens=budget, temperature=0, seed=0)
                prompt_ids = self._prompt_ids(weights, messages, budget)
                outputs.append("".join(weights.stream(prompt_ids, params)).strip())
                if progress and (number % 16 == 0 or number == len(conversations)):
                    progress(f"{self.name}: generated {number}/{len(conversations)}")
        return outputs

    def reference_scores(self, prompts: list[list[dict]], references: list[str],
                         progress: Progress = None) -> list[ReferenceScore]:
        scores = []
        with self.engine.hold(self.model) as weights:
            eos_ids = stop_token_ids(weights.network, weights.tokenizer)
            for number, (prompt, reference) in enumerate(zip(prompts, references), 1):
                ids, count = _reference_ids(weights, eos_ids, prompt, reference)
                scores.append(_score(weights.network, ids, count))
                if progress and (number % 16 == 0 or number == len(prompts)):
                    progress(f"{self.name}: scored {number}/{len(prompts)} references")
        return scores


def _reference_ids(weights, eos_ids: set[int], prompt: list[dict],
                   reference: str) -> tuple[list[int], int]:
    """Token ids of prompt + reference answer, and how many of them are the reference."""
    prompt_ids = render_chat(weights.tokenizer, prompt)
    full_ids = render_chat(weights.tokenizer, prompt + [{"role": "assistant",
                                                         "content": reference}],
                           add_generation_prompt=False)
    shared = len(os.path.commonprefix([prompt_ids, full_ids]))  # any sequences, not only paths
    # Score up to and including the end-of-turn token; what a template adds after it
    # (a newline) is formatting, not the answer.
    end = len(full_ids)
    for position in range(shared, len(full_ids)):
        if full_ids[position] in eos_ids:
            end = position + 1
            break
    full_ids = full_ids[:end][-weights.context_length:]
    return full_ids, min(end - shared, len(full_ids) - 1)


def _score(network, ids: list[int], count: int) -> ReferenceScore:
    """Loss and greedy hits on the last `count` tokens of `ids` given everything before them."""
    import torch
    import torch.nn.functional as F

    predicted = prompt_logits(network, ids, count + 1)[:-1]
    targets = torch.tensor(ids[-count:])
    loss = F.cross_entropy(predicted, targets, reduction="sum")
    correct = (predicted.argmax(-1) == targets).sum()
    return ReferenceScore(float(loss), count, int(correct))


class EndpointModel:
    """A model behind an OpenAI-compatible /v1/chat/completions (strop, vLLM, llama.cpp...)."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None,
                 concurrency: int = 4, timeout: float = 120.0):
        from openai import OpenAI

        self.client = OpenAI(base_url=base_url, api_key=api_key or "not-needed",
                             timeout=timeout, max_retries=2)
        self.base_url = base_url
        self.name = model
        self.concurrency = concurrency

    def describe(self) -> dict:
        return {"name": self.name, "kind": "endpoint", "base_url": self.base_url}

    def _one(self, messages: list[dict], budget: int) -> str:
        response = self.client.chat.completions.create(
            model=self.name, messages=messages, temperature=0, max_tokens=budget, seed=0)
        return (response.choices[0].message.content or "").strip()

    def generate(self, conversations: list[list[dict]], budgets: list[int],
                 progress: Progress = None) -> list[str]:
        outputs: list[str] = []
        with ThreadPoolExecutor(self.concurrency) as pool:
            for number, text in enumerate(pool.map(self._one, conversations, budgets), 1):
                outputs.append(text)
                if progress and (number % 16 == 0 or number == len(conversations)):
                    progress(f"{self.name}: generated {number}/{len(conversations)}")
        return outputs

    def reference_scores(self, prompts, references, progress: Progress = None):
        return None  # chat endpoints do not return prompt log-probabilities


def _is_backend(candidate) -> bool:
    return hasattr(candidate, "generate") and hasattr(candidate, "reference_scores")


def base_and_tuned(base, tuned, settings=None):
    """Backends for a base and a tuned model, each a backend already or a model name: an
    ft: name, an adapter or model folder, a base model name. Names are served by one engine
    in the serving settings of `settings` (default `Settings.load()`), so an adapter and its
    base share weights."""
    if _is_backend(base) and _is_backend(tuned):
        return base, tuned
    from strop.settings import Settings
    from strop.store.served import local_resolver

    settings = settings or Settings.load()
    engine = Engine(local_resolver(settings), settings.serving)
    return tuple(side if _is_backend(side) else LocalModel(engine, side)
                 for side in (base, tuned))
