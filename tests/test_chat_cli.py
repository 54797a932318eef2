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


def test_chat_with_an_adapter_answers_as_peft_does(tiny_model_dir, tiny, tmp_path):
    """The CLI merges the adapter to decode fast; the reply is the unmerged PEFT model's."""
    import copy

    from peft import PeftModel

    from strop.serving.generation import SamplingParams, complete_chat
    from strop.serving.synthetic import make_random_adapter

    adapter = make_random_adapter(tiny_model_dir, tmp_path / "adapter", seed=3, scale=0.3)
    result = CliRunner().invoke(app, ["chat", "-m", str(adapter), "--max-tokens", "12", "Hello"])
    assert result.exit_code == 0, result.output
    reference = PeftModel.from_pretrained(copy.deepcopy(tiny.model), str(adapter)).eval()
    expected = complete_chat(reference, tiny.tokenizer, [{"role": "user", "content": "Hello"}],
                             SamplingParams(max_tokens=12, temperature=0)).text
    assert expected.strip() and expected.strip() in result.output
