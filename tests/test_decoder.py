"""The written-out decoder computes what the transformers forward computes."""

import pytest
import torch

from strop.serving.decoder import Decoder, unsupported_reason
from strop.serving.generation import SamplingParams, decode_session, generate_token_ids


def _random_model(kind: str, **overrides):
    from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                              Qwen2Config, Qwen2ForCausalLM)

    classes = {"llama": (LlamaConfig, LlamaForCausalLM), "mistral": (MistralConfig, MistralForCausalLM),
               "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
    config_class, model_class = classes[kind]
    settings = dict(vocab_size=97, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                    num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=128,
                    tie_word_embeddings=False)
    if kind == "mistral":
        settings["sliding_window"] = None
    settings.update(overrides)
    torch.manual_seed(0)
    return model_class(config_class(**settings)).eval()


def _reference_logits(model, prompt: list[int], continuation: list[int]) -> list[torch.Tensor]:
    """Logits of the last position after the prompt, then after each continuation token,
    each from a full forward pass without any cache."""
    ids = list(prompt)
    out = []
    with torch.inference_mode():
        for token in [None, *continuation]:
            if token is not None:
                ids.append(token)
            out.append(model(input_ids=torch.tensor([ids])).logits[0, -1])
    return out


@pytest.mark.parametrize("kind, overrides", [
    ("llama", {}),
    ("llama", {"rope_parameters": {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                   "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                   "original_max_position_embeddings": 32}}),
    ("mistral", {}),
    ("qwen2", {}),  # biases on q, k, v
])
def test_logits_match_the_transformers_forward(kind, overrides):
    model = _random_model(kind, **overrides)
    assert unsupported_reason(model) is None
    prompt, continuation = [5, 17, 33, 2, 64, 9, 11], [40, 3, 77, 12]
    session = Decoder(model).session(len(prompt) + len(continuation))
    produced = [session.forward(prompt)] + [session.forward([t]) for t in continuation]
    for step, (ours, theirs) in enumerate(zip(produced, _reference_logits(model, prompt, continuation))):
        assert torch.allclose(ours, theirs, atol=1e-4, rtol=1e-4), f"step {step} differs"


@pytest.mark.parametrize("written_out", [True, False])
def test_prompt_logits_match_the_transformers_forward_at_every_kept_position(written_out):
    """What evaluation scores references with: the last `keep` positions' logits, from the
    written-out decoder and from the fallback session alike."""
    from strop.serving.generation import _TransformersSession, prompt_logits

    model = _random_model("llama")
    ids = [5, 17, 33, 2, 64, 9, 11, 40, 3]
    with torch.inference_mode():
        expected = model(input_ids=torch.tensor([ids])).logits[0, -4:]
    if written_out:
        kept = prompt_logits(model, ids, 4)
    else:
        kept = _TransformersSession(model).logits(ids, 4)
    assert kept.shape == (4, 97) and kept.dtype == torch.float32
    assert torch.allclose(kept, expected, atol=1e-4, rtol=1e-4)


def test_half_precision_weights_stay_close_to_float32():
    model = _random_model("llama")
    prompt = [5, 17, 33, 2, 64, 9, 11]
    reference = Decoder(model).session(8).forward(prompt)
    session = Decoder(model.to(torch.bfloat16)).session(9)
    prefill = session.forward(prompt)
    step = session.forward([4])
    assert prefill.dtype == step.dtype == torch.float32
    assert torch.allclose(prefill, reference, atol=0.05)
    assert torch.isfinite(step).all()


def test_greedy_tokens_equal_the_transformers_cache_path(tiny):
    from strop.serving.generation import _TransformersSession

    prompt = tiny.tokenizer.apply_chat_template([{"role": "user", "content": "Hello there"}],
                                                add_generation_prompt=True, return_dict=False)
    params = SamplingParams(max_tokens=16, temperature=0)
    ours = list(generate_token_ids(tiny.model, prompt, params, set()))
    session, ids, theirs = _TransformersSession(tiny.model), list(prompt), []
    for _ in range(16):
        theirs.append(int(session.forward(ids).argmax()))
        ids = [theirs[-1]]
    assert ours == theirs


def test_merged_adapter_weights_are_seen_by_the_next_generation(tiny):
    model = tiny.model
    prompt = [5, 6, 7]
    before = decode_session(model, 4).forward(prompt)
    weight = model.model.layers[0].mlp.down_proj.weight
    original = weight.data
    try:
        weight.data = original + 0.5  # what MergedLora does: point the layer at new weights
        after = decode_session(model, 4).forward(prompt)
    finally:
        weight.data = original
    assert not torch.allclose(before, after)
    assert torch.allclose(decode_session(model, 4).forward(prompt), before)


def test_unsupported_models_fall_back_to_the_transformers_forward(tiny):
    from peft import LoraConfig, get_peft_model

    from strop.serving.generation import _TransformersSession

    wrapped = get_peft_model(_random_model("llama"), LoraConfig(r=2, target_modules=["q_proj"]))
    assert "Linear" in unsupported_reason(wrapped.base_model.model)
    assert isinstance(decode_session(wrapped, 8), _TransformersSession)
    sliding = _random_model("mistral", sliding_window=64)
    assert "sliding" in unsupported_reason(sliding)
    with pytest.raises(ValueError, match="sliding"):
        Decoder(sliding)


def test_a_session_refuses_to_run_past_its_capacity(tiny):
    session = decode_session(tiny.model, 4)
    session.forward([5, 6, 7])
    session.forward([8])
    with pytest.raises(ValueError, match="past the 4"):
        session.forward([9])


def test_joined_projections_compute_the_same_logits():
    from strop.serving.decoder import join_projections

    model = _random_model("qwen2")
    prompt = [5, 17, 33, 2, 64, 9, 11]
    before = Decoder(model).session(8).forward(prompt)
    groups = join_projections(model)
    assert groups[0] == ("model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj",
                         "model.layers.0.self_attn.v_proj")
    decoder = Decoder(model)
    assert all(layer.qkv_joined is not None and layer.gate_up_joined is not None
               for layer in decoder.layers)
    assert torch.allclose(decoder.session(8).forward(prompt), before, atol=1e-5)
    assert torch.allclose(model(input_ids=torch.tensor([prompt])).logits[0, -1], before, atol=1e-4)
