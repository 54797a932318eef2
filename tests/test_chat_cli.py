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
