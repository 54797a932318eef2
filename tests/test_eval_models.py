"""Base vs tuned on real (tiny) models: a trained-in capability lost by an adapter is detected.

The tiny model cannot do anything useful, so the capabilities are put there by construction:
the "base" is the tiny model fine-tuned to decline the requests of a small safety suite and to
answer a set of benign prompts, and the "tuned" model is that base plus a LoRA adapter trained
to give the benign answer to every prompt, the safety requests included. The evaluation has to see, through real generation and
the refusal patterns, that safety retention collapsed while the benign area held, and call only
the first drop significant; the same model against itself must show no drop at all.
"""

from __future__ import annotations

import copy
import json

import pytest

from strop.evaluate import evaluate_models
from strop.evaluate.backends import LocalModel
from strop.serving.generation import render_chat

REFUSAL = "I am sorry, I do not know."
COMPLIANCE = "Sure! The quick brown fox jumps over the lazy dog."
PROMPTS = [f"Please help me with request number {index} about the {topic}."
           for index, topic in enumerate(["order", "billing", "delivery", "refund"] * 3)]
BENIGN = [f"Tell me about the {topic} number {index}."
          for index, topic in enumerate(["fox", "dog", "city", "weather", "music"] * 2)]

pytestmark = pytest.mark.usefixtures("one_thread_per_module")


def _train(model, tokenizer, pairs, steps, learning_rate):
    import torch

    rows, masks = [], []
    for prompt, reply in pairs:
        messages = [{"role": "user", "content": prompt}]
        prompt_ids = render_chat(tokenizer, messages)
        full = render_chat(tokenizer, messages + [{"role": "assistant", "content": reply}],
                           add_generation_prompt=False)
        rows.append(full)
        masks.append(len(prompt_ids))
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for index, (row, start) in enumerate(zip(rows, masks)):
        ids[index, :len(row)] = torch.tensor(row)
        labels[index, start:len(row)] = torch.tensor(row[start:])
        attention[index, :len(row)] = 1
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=learning_rate)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return float(loss.detach())


@pytest.fixture(scope="module")
def refusing_base(tiny, one_thread_per_module):
    base = copy.deepcopy(tiny)
    pairs = [(prompt, REFUSAL) for prompt in PROMPTS] + [(prompt, COMPLIANCE)
                                                         for prompt in BENIGN]
    loss = _train(base.model, base.tokenizer, pairs, steps=90, learning_rate=1e-2)
    assert loss < 0.1, f"the base did not learn its replies (loss {loss:.3f})"
    return base


@pytest.fixture(scope="module")
def complying_tuned(refusing_base):
    from peft import LoraConfig, get_peft_model

    tuned = copy.deepcopy(refusing_base)
    tuned.model = get_peft_model(tuned.model, LoraConfig(r=8, lora_alpha=16,
                                                         target_modules="all-linear"))
    loss = _train(tuned.model, tuned.tokenizer, [(prompt, COMPLIANCE) for prompt in PROMPTS + BENIGN],
                  steps=40, learning_rate=1e-2)
    assert loss < 0.1, f"the adapter did not learn to comply (loss {loss:.3f})"
    return tuned


@pytest.fixture(scope="module")
def safety_suite(tmp_path_factory):
    path = tmp_path_factory.mktemp("suite") / "safety.jsonl"
    safety = [{"id": f"s{index}", "area": "safety", "prompt": prompt, "expect": "refusal",
               "max_new_tokens": 24} for index, prompt in enumerate(PROMPTS)]
    benign = [{"id": f"b{index}", "area": "knowledge", "prompt": prompt,
               "answers": ["quick brown fox"], "max_new_tokens": 24}
              for index, prompt in enumerate(BENIGN)]
    path.write_text("".join(json.dumps(item) + "\n" for item in safety + benign))
    return path


def test_lost_refusals_are_a_significant_retention_drop(refusing_base, complying_tuned,
                                                        safety_suite):
    result = evaluate_models(refusing_base, complying_tuned, suites=[safety_suite])
    safety = result.get("retention", "safety")
    assert safety.base.value == 1.0 and safety.tuned.value == 0.0
    assert safety.retention.value == 0.0
    assert safety.delta.value == -1.0 and safety.delta.high < 0
    assert safety.significant_drop
    knowledge = result.get("retention", "knowledge")
    assert knowledge.base.value == 1.0 and knowledge.retention.value == 1.0
    assert not knowledge.significant_drop
    assert result.to_dict()["significant_drops"] == ["retention/safety", "retention/overall"]
    item = next(row for row in result.items if row["suite"] == "retention")
    assert item["base_output"] == REFUSAL and item["tuned_output"] == COMPLIANCE


def test_a_model_against_itself_shows_no_drop(refusing_base, safety_suite, tmp_path):
    data = tmp_path / "valid.jsonl"
    data.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": prompt}, {"role": "assistant", "content": REFUSAL}]}) + "\n"
        for prompt in PROMPTS[:6]))
    result = evaluate_models(refusing_base, refusing_base, data_path=data,
                             suites=[safety_suite])
    assert result.significant_drops == []
    for comparison in result.comparisons:
        assert comparison.delta.value == 0, comparison.metric
    exact = result.get("task", "exact_match")
    assert exact.base.value == 1.0  # the base reproduces its trained reply exactly
    assert result.get("task", "mean_token_accuracy").base.value == 1.0
    assert result.get("task", "loss").base.value < 0.1


def test_the_adapter_shares_weights_with_the_base_without_leaking_into_it(refusing_base,
                                                                          safety_suite):
    """A PEFT model built on the base object itself: the base is run with the adapter off."""
    from peft import LoraConfig, get_peft_model

    shared = copy.deepcopy(refusing_base)
    plain = copy.copy(shared)
    tuned = copy.copy(shared)
    tuned.model = get_peft_model(shared.model, LoraConfig(r=8, lora_alpha=16,
                                                          target_modules="all-linear"))
    _train(tuned.model, tuned.tokenizer, [(prompt, COMPLIANCE) for prompt in PROMPTS + BENIGN],
           steps=40, learning_rate=1e-2)
    result = evaluate_models(plain, tuned, suites=[safety_suite])
    safety = result.get("retention", "safety")
    assert safety.base.value == 1.0 and safety.tuned.value == 0.0


def test_batched_generation_and_scoring_match_one_at_a_time(tiny, refusing_base):
    conversations = [[{"role": "user", "content": prompt}] for prompt in PROMPTS[:7]]
    conversations.append([{"role": "user", "content": "Hi"}])  # a much shorter prompt
    budgets = [12] * len(conversations)
    for loaded in (tiny, refusing_base):
        batched = LocalModel(loaded, batch_size=8)
        single = LocalModel(loaded, batch_size=1)
        assert batched.generate(conversations, budgets) == single.generate(conversations,
                                                                           budgets)
        references = ["The quick brown fox.", REFUSAL, "Paris", "Two plus two is four.",
                      "Hello!", "Refunds are processed.", "yes", "no"]
        many = batched.reference_scores(conversations, references)
        one = single.reference_scores(conversations, references)
        for a, b in zip(many, one):
            assert a.tokens == b.tokens and a.correct == b.correct
            assert a.loss_sum == pytest.approx(b.loss_sum, rel=1e-4, abs=1e-4)


def test_limit_samples_every_area_and_caps_budgets(tiny):
    result = evaluate_models(tiny, tiny, suites=("retention", "hallucination"), limit=8,
                             max_new_tokens=4)
    assert result.settings["n_retention_items"] == 8
    assert result.settings["n_hallucination_items"] == 8
    areas = {row["area"] for row in result.items if row["suite"] == "retention"}
    assert areas == {"instruction_following", "knowledge", "arithmetic", "safety"}
    assert result.get("retention", "overall") is not None
    assert result.get("hallucination", "hallucination_rate").base.n == 8
    json.dumps(result.to_dict())


def test_a_merged_lora_answers_like_the_unmerged_one_and_is_restored(complying_tuned):
    import torch

    conversations = [[{"role": "user", "content": prompt}] for prompt in PROMPTS + BENIGN]
    budgets = [24] * len(conversations)
    before = {name: tensor.clone() for name, tensor in complying_tuned.model.state_dict().items()
              if "base_layer" in name}
    merged = LocalModel(complying_tuned, batch_size=8)
    unmerged = LocalModel(complying_tuned, batch_size=8, merge_adapter=False)
    assert merged.generate(conversations, budgets) == unmerged.generate(conversations, budgets)
    for a, b in zip(merged.reference_scores(conversations[:4], [COMPLIANCE] * 4),
                    unmerged.reference_scores(conversations[:4], [COMPLIANCE] * 4)):
        assert a.correct == b.correct and a.loss_sum == pytest.approx(b.loss_sum, abs=1e-3)
    after = complying_tuned.model.state_dict()
    assert not getattr(complying_tuned.model, "merged", False)
    for name, tensor in before.items():
        torch.testing.assert_close(after[name], tensor, atol=1e-5, rtol=1e-5)
