"""What an evaluation talks to: a model in this process, or any OpenAI-compatible endpoint.

Both answer `generate(conversations, budgets)` with greedy decoding. A local model also scores
reference answers (`reference_scores`: loss and token accuracy), which an endpoint cannot.

Local generation is batched: prompts are grouped by their token budget, sorted by length and
left-padded, so one forward pass serves a whole batch. On a memory-bound CPU a batch of 16
costs little more per step than a single prompt, which is what makes a few hundred items
affordable.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, ContextManager

from strop.serving.generation import render_chat, stop_token_ids

Progress = Callable[[str], None] | None


@dataclass
class ReferenceScore:
    loss_sum: float  # summed cross-entropy over the reference tokens
    tokens: int  # reference tokens scored
    correct: int  # reference tokens the model ranks first (greedy)


class LocalModel:
    """A `strop.models.LoadedModel` (or a PEFT-wrapped one) evaluated in this process.

    `context` wraps every forward pass; it is how the base model is evaluated through a PEFT
    model that shares its weights (`peft_model.disable_adapter()`), without a second copy.
    """

    def __init__(self, loaded, name: str | None = None, batch_size: int = 16,
                 context: Callable[[], ContextManager] | None = None,
                 merge_adapter: bool = True):
        self.model = loaded.model
        self.merge_adapter = merge_adapter
        self.tokenizer = loaded.tokenizer
        self.name = name or loaded.source.name
        self.batch_size = batch_size
        self.context = context or contextlib.nullcontext
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.eos_ids = sorted(stop_token_ids(self.model, self.tokenizer))
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.eos_ids[0]

    @contextlib.contextmanager
    def _session(self):
        """Around a whole generate/score call: the caller's context (e.g. adapter off), and
        for a LoRA model run as itself, the adapter merged into the weights for the duration,
        so each step costs what the base model costs instead of adding two small matmuls per
        layer. Unmerging subtracts the same product again (float32 round-off only)."""
        with self.context():
            merged = False
            if self.context is contextlib.nullcontext and self.merge_adapter:
                merge = getattr(self.model, "merge_adapter", None)
                already = any(getattr(module, "merged", False) is True
                              for module in self.model.modules())
                if merge is not None and not already:
                    try:
                        merge()
                        merged = True
                    except (ValueError, NotImplementedError, AttributeError):
                        merged = False  # adapter types that cannot merge run unmerged
            try:
                yield
            finally:
                if merged:
                    self.model.unmerge_adapter()

    def describe(self) -> dict:
        dtype = next(self.model.parameters()).dtype
        return {"name": self.name, "kind": "local", "dtype": str(dtype).replace("torch.", "")}

    def _left_padded(self, rows: list[list[int]]):
        import torch

        width = max(len(row) for row in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            ids[index, width - len(row):] = torch.tensor(row, dtype=torch.long)
            mask[index, width - len(row):] = 1
        device = getattr(self.model, "device", None)
        if device is not None and device.type != "cpu":
            ids, mask = ids.to(device), mask.to(device)
        return ids, mask

    def _prompt_ids(self, messages: list[dict], budget: int) -> list[int]:
        ids = render_chat(self.tokenizer, messages)
        room = self.context_length - budget
        if room < 1:
            raise ValueError(f"max_new_tokens {budget} leaves no room for the prompt in a "
                             f"context of {self.context_length} tokens")
        return ids[-room:]  # keep the end: the question and the generation prompt

    def generate(self, conversations: list[list[dict]], budgets: list[int],
                 progress: Progress = None) -> list[str]:
        prompts = [self._prompt_ids(messages, budget)
                   for messages, budget in zip(conversations, budgets)]
        order = sorted(range(len(prompts)), key=lambda i: (budgets[i], len(prompts[i])))
        outputs: list[str] = [""] * len(prompts)
        with self._session():
            self._generate_batches(prompts, budgets, order, outputs, progress)
        return outputs

    def _generate_batches(self, prompts, budgets, order, outputs, progress) -> None:
        import torch
        from transformers import GenerationConfig

        done = 0
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            budget = max(budgets[i] for i in batch)
            ids, mask = self._left_padded([prompts[i] for i in batch])
            config = GenerationConfig(max_new_tokens=budget, do_sample=False,
                                      pad_token_id=self.pad_id, eos_token_id=self.eos_ids)
            with torch.inference_mode():
                generated = self.model.generate(input_ids=ids, attention_mask=mask,
                                                generation_config=config)
            for row, index in enumerate(batch):
                new = generated[row, ids.shape[1]:].tolist()[:budgets[index]]
                for position, token in enumerate(new):
                    if token in self.eos_ids:
                        new = new[:position]
                        break
                outputs[index] = self.tokenizer.decode(new, skip_special_tokens=True).strip()
            done += len(batch)
            if progress:
                progress(f"{self.name}: generated {done}/{len(prompts)}")

    def _reference_ids(self, prompt: list[dict], reference: str) -> tuple[list[int], int]:
        """Token ids of prompt + reference answer, and how many of them are the reference."""
        prompt_ids = render_chat(self.tokenizer, prompt)
        full_ids = render_chat(self.tokenizer, prompt + [{"role": "assistant",
                                                          "content": reference}],
                               add_generation_prompt=False)
        shared = 0
        for a, b in zip(prompt_ids, full_ids):
            if a != b:
                break
            shared += 1
        # Score up to and including the end-of-turn token; what a template adds after it
        # (a newline) is formatting, not the answer.
        end = len(full_ids)
        for position in range(shared, len(full_ids)):
            if full_ids[position] in self.eos_ids:
                end = position + 1
                break
        full_ids = full_ids[:end][-self.context_length:]
        return full_ids, min(end - shared, len(full_ids) - 1)

    def reference_scores(self, prompts: list[list[dict]], references: list[str],
                         progress: Progress = None) -> list[ReferenceScore]:
        rows = [self._reference_ids(prompt, reference)
                for prompt, reference in zip(prompts, references)]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
        scores: list[ReferenceScore | None] = [None] * len(rows)
        batch_size = max(1, self.batch_size // 2)
        with self._session():
            self._score_batches(rows, order, scores, batch_size, progress)
        return scores  # type: ignore[return-value]

    def _score_batches(self, rows, order, scores, batch_size, progress) -> None:
        import torch
        import torch.nn.functional as F

        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            ids, mask = self._left_padded([rows[i][0] for i in batch])
            # Left padding puts every reference at the end, so only the last `keep` positions
            # need logits: the vocabulary projection is the costliest part of a small model.
            keep = max(rows[i][1] for i in batch) + 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                    logits_to_keep=keep).logits.float()
            for row, index in enumerate(batch):
                count = rows[index][1]
                targets = ids[row, -count:]
                predicted = logits[row, -count - 1:-1]
                losses = F.cross_entropy(predicted, targets, reduction="sum")
                correct = (predicted.argmax(-1) == targets).sum()
                scores[index] = ReferenceScore(float(losses), count, int(correct))
            if progress:
                progress(f"{self.name}: scored {min(start + batch_size, len(order))}/"
                         f"{len(order)} references")


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


def base_and_tuned(base, tuned, batch_size: int = 16):
    """Backends for a base and a tuned model, each a LoadedModel or already a backend.

    When the tuned model is a PEFT model wrapped around the very base model object, the
    adapter is injected into the shared modules, so the base must be run with the adapter
    switched off (`disable_adapter`) rather than as a plain model.
    """
    tuned_backend = tuned if _is_backend(tuned) else LocalModel(tuned, batch_size=batch_size)
    if _is_backend(base):
        return base, tuned_backend
    context = None
    get_base = getattr(getattr(tuned, "model", None), "get_base_model", None)
    if get_base is not None and get_base() is base.model:
        context = tuned.model.disable_adapter
    return LocalModel(base, batch_size=batch_size, context=context), tuned_backend
