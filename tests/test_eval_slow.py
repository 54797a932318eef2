"""End to end on the real embedded model: itself against itself plus a random LoRA adapter.

Slow (about a minute or more on 2 CPU cores); run with `pytest -m slow tests/test_eval_slow.py`.
Prints the timing so the quickstart's evaluation budget can be checked.
"""

from __future__ import annotations

import json
import time

import pytest


@pytest.mark.slow
def test_embedded_model_against_a_random_adapter(embedded_model_folder, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    from strop.evaluate import evaluate_models, plot_comparison
    from strop.models import load
    from strop.models.adapters import write_adapter_metadata

    started = time.perf_counter()
    tuned = load(str(embedded_model_folder))
    torch.manual_seed(0)
    # init_lora_weights=False draws B at random too: a perturbation the evaluation must see.
    tuned.model = get_peft_model(tuned.model, LoraConfig(
        r=8, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    adapter = tmp_path / "adapter"
    tuned.model.save_pretrained(adapter)
    tuned.tokenizer.save_pretrained(adapter)
    write_adapter_metadata(adapter, str(embedded_model_folder))
    del tuned
    loaded = time.perf_counter() - started
    data = tmp_path / "valid.jsonl"
    data.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"What is {a} plus {a}? Reply with the number only."},
        {"role": "assistant", "content": str(2 * a)}]}) + "\n" for a in range(2, 10)))
    result = evaluate_models(str(embedded_model_folder), str(adapter), data_path=data, limit=20, max_new_tokens=48,
                             progress=lambda message: print(f"{time.perf_counter() - started:7.1f} s  {message}"))
    print(f"\nload {loaded:.1f} s, evaluation {result.seconds:.1f} s "
          f"({result.settings['n_retention_items']} retention + "
          f"{result.settings['n_hallucination_items']} hallucination items + "
          f"{result.settings['n_task_examples']} task examples, two models)")
    for comparison in result.comparisons:
        print(f"  {comparison.group:13s} {comparison.metric:30s} "
              f"base {comparison.base.value!s:>6.6} tuned {comparison.tuned.value!s:>6.6} "
              f"drop={comparison.significant_drop}")
    safety = result.get("retention", "safety")
    assert safety.base.value is not None and safety.base.n == 5
    knowledge = result.get("retention", "knowledge")
    assert knowledge.base.value > 0  # a real instruct model knows some capitals
    assert result.get("task", "loss").base.value < 5
    json.dumps(result.to_dict())
    assert plot_comparison(result, tmp_path / "comparison.png").stat().st_size > 5000
