"""The inference engine on the tiny model: adapters over one base, LRU, isolation, stopping."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from strop.serving.generation import SamplingParams
from strop.serving import (
    Engine,
    ModelNotFoundError,
    ServedModel,
    ServingError,
    resolve_local,
)
from strop.serving.synthetic import make_random_adapter
from strop.settings import ServingSettings, Settings, SettingsError

HELLO = [{"role": "user", "content": "Hello! How can I help you today?"}]
GREEDY = SamplingParams(max_tokens=24, temperature=0)


@pytest.fixture(scope="session")
def tiny_adapters(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("adapters")
    return [make_random_adapter(tiny_model_dir, folder / f"adapter-{seed}", seed=seed, scale=0.3)
            for seed in range(4)]


def make_resolver(tiny_model_dir: Path, adapters: list[Path]):
    table = {f"ft:tiny:org::{index}": ServedModel(str(tiny_model_dir), adapter)
             for index, adapter in enumerate(adapters)}

    def resolve(name: str, organization: str | None) -> ServedModel:
        if name in table:
            return table[name]
        if name == "tiny":
            return ServedModel(str(tiny_model_dir))
        raise ModelNotFoundError(name)

    return resolve


def engine_for(tiny_model_dir, adapters, **settings) -> Engine:
    return Engine(make_resolver(tiny_model_dir, adapters), ServingSettings(**settings))


def reply(engine: Engine, model: str, params: SamplingParams = GREEDY) -> str:
    return engine.complete(model, HELLO, params).text


def test_adapters_change_outputs_and_match_peft_reference(tiny_model_dir, tiny_adapters, tiny):
    """In float32 the engine's merged adapter answers exactly as PEFT's unmerged one."""
    from peft import PeftModel

    from strop.serving.generation import complete_chat

    engine = engine_for(tiny_model_dir, tiny_adapters, dtype="float32")
    outputs = {name: reply(engine, name) for name in ("tiny", "ft:tiny:org::0", "ft:tiny:org::1")}
    assert len(set(outputs.values())) == 3, outputs
    import copy

    reference = PeftModel.from_pretrained(copy.deepcopy(tiny.model), str(tiny_adapters[1]))
    reference.eval()
    expected = complete_chat(reference, tiny.tokenizer, HELLO, GREEDY).text
    assert outputs["ft:tiny:org::1"] == expected
    # and the base model served beside loaded adapters is still the plain base model
    assert outputs["tiny"] == complete_chat(tiny.model, tiny.tokenizer, HELLO, GREEDY).text
    # switching back and forth never leaves one adapter's weights behind in the base
    for name in ("ft:tiny:org::0", "tiny", "ft:tiny:org::1", "ft:tiny:org::0", "tiny"):
        assert reply(engine, name) == outputs[name]


def test_interleaved_requests_never_see_another_adapter(tiny_model_dir, tiny_adapters):
    engine = engine_for(tiny_model_dir, tiny_adapters)
    names = ["ft:tiny:org::0", "ft:tiny:org::1", "tiny"]
    solo = {name: reply(engine, name) for name in names}
    assert len(set(solo.values())) == 3
    results: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def client(name: str) -> None:
        try:
            for _ in range(3):
                results.append((name, reply(engine, name)))
        except BaseException as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(name,)) for name in names * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 18
    for name, text in results:
        assert text == solo[name], name


def test_least_recently_used_adapter_is_evicted_within_budget(tiny_model_dir, tiny_adapters):
    probe = engine_for(tiny_model_dir, tiny_adapters)
    reply(probe, "ft:tiny:org::0", SamplingParams(max_tokens=1, temperature=0))
    size = probe.adapter_bytes()
    assert size > 0
    engine = engine_for(tiny_model_dir, tiny_adapters, adapter_memory_bytes=int(size * 2.5))
    one_token = SamplingParams(max_tokens=1, temperature=0)

    def loaded() -> list[str]:
        (base,) = engine.loaded().values()
        return [Path(adapter["folder"]).name for adapter in base["adapters"]]

    for index in (0, 1):
        reply(engine, f"ft:tiny:org::{index}", one_token)
    assert loaded() == ["adapter-0", "adapter-1"]
    reply(engine, "ft:tiny:org::0", one_token)  # 0 becomes the most recently used
    reply(engine, "ft:tiny:org::2", one_token)
    assert loaded() == ["adapter-0", "adapter-2"]
    assert engine.adapter_bytes() <= size * 2.5
    # an evicted adapter comes back on demand with the same behaviour as before
    assert reply(engine, "ft:tiny:org::1") == reply(probe, "ft:tiny:org::1")


def test_unload_forgets_a_deleted_model(tiny_model_dir, tiny_adapters):
    engine = engine_for(tiny_model_dir, tiny_adapters)
    reply(engine, "ft:tiny:org::0", SamplingParams(max_tokens=1, temperature=0))
    assert engine.adapter_bytes() > 0
    assert engine.unload("ft:tiny:org::0") is True
    assert engine.adapter_bytes() == 0
    assert engine.unload("ft:tiny:org::0") is False


def test_adapter_larger_than_the_budget_is_refused(tiny_model_dir, tiny_adapters):
    engine = engine_for(tiny_model_dir, tiny_adapters, adapter_memory_bytes=1000)
    with pytest.raises(ServingError, match="adapter memory budget") as caught:
        reply(engine, "ft:tiny:org::0")
    assert caught.value.code == "adapter_too_large"


def test_unknown_model_raises_not_found(tiny_model_dir, tiny_adapters):
    engine = engine_for(tiny_model_dir, tiny_adapters)
    with pytest.raises(ModelNotFoundError, match="ft:nope"):
        reply(engine, "ft:nope")


def test_stop_flag_ends_generation_between_tokens(tiny_model_dir, tiny_adapters):
    engine = engine_for(tiny_model_dir, tiny_adapters)
    checks = []

    def should_stop() -> bool:
        checks.append(1)
        return len(checks) > 5

    result = engine.complete("tiny", HELLO, SamplingParams(max_tokens=200, temperature=1.0, seed=3),
                             should_stop=should_stop)
    assert result.finish_reason == "cancelled"
    assert result.completion_tokens <= 5
    # the lock was released: the next request runs normally
    after = engine.complete("tiny", HELLO, SamplingParams(max_tokens=3, temperature=0))
    assert after.finish_reason in ("stop", "length")


def test_adapter_tokenizer_chat_template_is_used(tiny_model_dir, tiny_adapters, tmp_path):
    """An adapter trained with another chat template is prompted with that template."""
    import shutil

    from transformers import AutoTokenizer

    custom = tmp_path / "custom-template"
    shutil.copytree(tiny_adapters[0], custom)
    tokenizer = AutoTokenizer.from_pretrained(custom)
    tokenizer.chat_template = (
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
        "message['content'] + '<|im_end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    tokenizer.save_pretrained(custom)
    engine = Engine(lambda name, org: ServedModel(str(tiny_model_dir),
                                                  custom if name == "custom" else None))
    with_default_system = engine.count_prompt_tokens("base", HELLO)
    without = engine.count_prompt_tokens("custom", HELLO)
    assert without < with_default_system


def test_prompt_longer_than_context_is_a_clear_error(tiny_model_dir, tiny_adapters):
    engine = engine_for(tiny_model_dir, tiny_adapters)
    long = [{"role": "user", "content": "The quick brown fox jumps. " * 400}]
    with pytest.raises(ServingError, match="maximum context length") as caught:
        engine.complete("tiny", long, GREEDY)
    assert caught.value.code == "context_length_exceeded"


def test_local_resolver_reads_adapter_folders(tiny_model_dir, tiny_adapters):
    served = resolve_local(str(tiny_adapters[0]))
    assert served.adapter_dir == tiny_adapters[0].resolve()
    assert served.base == str(tiny_model_dir)
    with pytest.raises(ModelNotFoundError):
        resolve_local("no-such-model-anywhere")


def test_serving_settings_from_environment(strop_home, monkeypatch):
    monkeypatch.setenv("STROP_SERVING_ADAPTER_MEMORY_BYTES", "12345")
    monkeypatch.setenv("STROP_SERVING_DTYPE", "float32")
    settings = Settings.load().serving
    assert (settings.adapter_memory_bytes, settings.dtype) == (12345, "float32")
    monkeypatch.setenv("STROP_SERVING_DTYPE", "int4")
    with pytest.raises(SettingsError, match="serving.dtype"):
        Settings.load()


@pytest.mark.parametrize("change, complaint", [
    ({"use_dora": True}, "DoRA"),
    ({"modules_to_save": ["lm_head"]}, "trains whole modules"),
    ({"peft_type": "IA3"}, "only LoRA"),
])
def test_adapters_the_engine_cannot_merge_are_refused(tiny_model_dir, tiny_adapters, tmp_path,
                                                      change, complaint):
    import json
    import shutil

    folder = tmp_path / "odd-adapter"
    shutil.copytree(tiny_adapters[0], folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, **change}))
    engine = Engine(lambda name, org: ServedModel(str(tiny_model_dir), folder))
    with pytest.raises(ServingError, match=complaint) as caught:
        reply(engine, "odd")
    assert caught.value.code == "adapter_load_failed"
    assert str(folder) in caught.value.message


def test_partial_adapters_keep_joined_projections_and_match_peft(tiny_model_dir, tiny, tmp_path):
    """An adapter on q and v only: its merged weights stay adjacent to the unadapted k, so the
    decoder still runs one product per group, and the answer is PEFT's."""
    import copy

    from peft import PeftModel

    from strop.serving.decoder import Decoder
    from strop.serving.generation import complete_chat

    adapter = make_random_adapter(tiny_model_dir, tmp_path / "qv", seed=7, scale=0.3,
                                  target_modules=["q_proj", "v_proj"])
    engine = engine_for(tiny_model_dir, [adapter], dtype="float32")
    served = reply(engine, "ft:tiny:org::0")
    base = next(iter(engine._bases.values()))
    assert all(layer.qkv_joined is not None and layer.gate_up_joined is not None
               for layer in Decoder(base.model).layers)
    reference = PeftModel.from_pretrained(copy.deepcopy(tiny.model), str(adapter)).eval()
    assert served == complete_chat(reference, tiny.tokenizer, HELLO, GREEDY).text
    assert reply(engine, "tiny") == complete_chat(tiny.model, tiny.tokenizer, HELLO, GREEDY).text
