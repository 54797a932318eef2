import pytest
import torch

from strop.serving.generation import SamplingParams, complete_chat, generate_token_ids, render_chat, stop_token_ids


def test_chat_template_renders_chatml(tiny):
    messages = [{"role": "user", "content": "Hello"}]
    ids = render_chat(tiny.tokenizer, messages)
    text = tiny.tokenizer.decode(ids)
    assert text == (
        "<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n"
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    )


def test_explicit_system_prompt_replaces_default(tiny):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    text = tiny.tokenizer.decode(render_chat(tiny.tokenizer, messages))
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert "helpful AI assistant" not in text


def test_greedy_generation_is_deterministic(tiny):
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    params = SamplingParams(max_tokens=20, temperature=0)
    first = complete_chat(tiny.model, tiny.tokenizer, messages, params)
    second = complete_chat(tiny.model, tiny.tokenizer, messages, params)
    assert first.text == second.text
    assert first.completion_tokens == second.completion_tokens > 0


def test_seeded_sampling_repeats_and_differs_across_seeds(tiny):
    prompt = render_chat(tiny.tokenizer, [{"role": "user", "content": "Hello"}])
    eos = stop_token_ids(tiny.model, tiny.tokenizer)

    def sample(seed):
        params = SamplingParams(max_tokens=30, temperature=1.0, seed=seed)
        return list(generate_token_ids(tiny.model, prompt, params, eos))

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_kv_cache_matches_full_recompute(tiny):
    prompt = render_chat(tiny.tokenizer, [{"role": "user", "content": "Hello there"}])
    eos = stop_token_ids(tiny.model, tiny.tokenizer)
    cached = list(generate_token_ids(tiny.model, prompt, SamplingParams(max_tokens=12, temperature=0), set()))
    ids = list(prompt)
    with torch.inference_mode():
        for _ in range(12):
            ids.append(int(tiny.model(torch.tensor([ids])).logits[0, -1].argmax()))
    assert cached == ids[len(prompt):]
    assert eos  # the tiny model has an EOS id to stop on


def test_generation_stops_at_eos(tiny):
    """Force EOS to be the most likely token: generation must stop there, not run to max."""
    eos_id = tiny.tokenizer.eos_token_id
    head = tiny.model.lm_head
    original = head.weight.detach().clone()
    bias = torch.zeros(head.weight.shape[0])
    bias[eos_id] = 1e4
    hook = head.register_forward_hook(lambda module, args, output: output + bias)
    try:
        result = complete_chat(tiny.model, tiny.tokenizer, [{"role": "user", "content": "Hi"}],
                               SamplingParams(max_tokens=50, temperature=0))
    finally:
        hook.remove()
    assert torch.equal(head.weight, original)
    assert result.completion_tokens == 0
    assert result.finish_reason == "stop"


def test_max_tokens_reports_length(tiny):
    eos_id = tiny.tokenizer.eos_token_id
    bias = torch.zeros(tiny.model.lm_head.weight.shape[0])
    bias[eos_id] = -1e4
    hook = tiny.model.lm_head.register_forward_hook(lambda module, args, output: output + bias)
    try:
        result = complete_chat(tiny.model, tiny.tokenizer, [{"role": "user", "content": "Hi"}],
                               SamplingParams(max_tokens=7, temperature=0))
    finally:
        hook.remove()
    assert result.completion_tokens == 7
    assert result.finish_reason == "length"


@pytest.mark.parametrize("bad", [dict(max_tokens=0), dict(temperature=-1), dict(top_p=0)])
def test_invalid_sampling_params_are_refused(bad):
    with pytest.raises(ValueError):
        SamplingParams(**bad)


@pytest.mark.slow
def test_embedded_model_answers(embedded_model_folder):
    from strop.models import load

    loaded = load(str(embedded_model_folder))
    result = complete_chat(loaded.model, loaded.tokenizer,
                           [{"role": "user", "content": "What is the capital of France?"}],
                           SamplingParams(max_tokens=24, temperature=0))
    assert "Paris" in result.text
    assert result.finish_reason == "stop"
