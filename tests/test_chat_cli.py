from typer.testing import CliRunner

from strop.cli import app


def test_chat_answers_from_a_model_folder(tiny_model_dir):
    result = CliRunner().invoke(app, ["chat", "-m", str(tiny_model_dir), "--max-tokens", "4",
                                      "Hello"])
    assert result.exit_code == 0, result.output
    assert "tokens in" in result.output  # the speed line after the streamed reply


def test_chat_with_an_unknown_ft_name_says_so(tmp_path):
    result = CliRunner().invoke(app, ["chat", "-m", "ft:tiny:local::missing", "Hello"])
    assert result.exit_code == 2
    assert "no fine-tuned model named 'ft:tiny:local::missing'" in result.output


def test_chat_with_an_adapter_answers_as_peft_does(tiny_model_dir, tiny, tmp_path, monkeypatch):
    """The CLI merges the adapter to decode fast; in float32 the reply is the unmerged PEFT
    model's."""
    import copy

    from peft import PeftModel

    from strop.serving.generation import SamplingParams, complete_chat
    from strop.serving.synthetic import make_random_adapter

    monkeypatch.setenv("STROP_SERVING_DTYPE", "float32")
    adapter = make_random_adapter(tiny_model_dir, tmp_path / "adapter", seed=3, scale=0.3)
    result = CliRunner().invoke(app, ["chat", "-m", str(adapter), "--max-tokens", "12", "Hello"])
    assert result.exit_code == 0, result.output
    reference = PeftModel.from_pretrained(copy.deepcopy(tiny.model), str(adapter)).eval()
    expected = complete_chat(reference, tiny.tokenizer, [{"role": "user", "content": "Hello"}],
                             SamplingParams(max_tokens=12, temperature=0)).text
    assert expected.strip() and expected.strip() in result.output


def test_chat_replies_what_the_server_engine_serves(tiny_model_dir, tmp_path, monkeypatch):
    """Same engine class, same serving precision: the reply in the terminal is the served
    reply, in whichever precision STROP_SERVING_DTYPE names."""
    import strop.cli.chat as chat_module
    from strop.serving import Engine
    from strop.settings import ServingSettings
    from strop.serving.generation import SamplingParams
    from strop.serving.synthetic import make_random_adapter

    created = []

    class RecordedEngine(Engine):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            created.append(self)

    monkeypatch.setattr(chat_module, "Engine", RecordedEngine)
    adapter = make_random_adapter(tiny_model_dir, tmp_path / "adapter", seed=5, scale=0.3)
    hello = [{"role": "user", "content": "Hello"}]
    greedy = SamplingParams(max_tokens=24, temperature=0)
    for dtype in ("float16", "float32"):
        monkeypatch.setenv("STROP_SERVING_DTYPE", dtype)
        served = Engine(settings=ServingSettings(dtype=dtype)).complete(str(adapter), hello, greedy)
        result = CliRunner().invoke(app, ["chat", "-m", str(adapter), "--max-tokens", "24",
                                          "Hello"])
        assert result.exit_code == 0, result.output
        assert created[-1].settings.dtype == dtype
        assert served.text.strip() and served.text.strip() in result.output
