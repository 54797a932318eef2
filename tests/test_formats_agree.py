"""`strop data check` and training read records through one definition (strop.data.formats), so
they refuse the same lines with the same words, including the two records they once read
differently: {"prompt"} alone, and "messages" beside "preferred_output"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from strop.cli import app
from strop.data import detect_format
from strop.train import Hyperparameters, TrainConfig, TrainingError, run_training

runner = CliRunner()

CHAT = {"messages": [{"role": "user", "content": "Say hi."},
                     {"role": "assistant", "content": "Hi!"}]}
PREFERENCE = {"input": {"messages": [{"role": "user", "content": "Say hi."}]},
              "preferred_output": [{"role": "assistant", "content": "Hi!"}],
              "non_preferred_output": [{"role": "assistant", "content": "Go away."}]}
PROMPT_COMPLETION = {"prompt": "Say hi.", "completion": " Hi!"}
# A DPO example written with the prompt at the top level, as a chat example has it.
MESSAGES_AND_PREFERRED = {"messages": PREFERENCE["input"]["messages"],
                          "preferred_output": PREFERENCE["preferred_output"],
                          "non_preferred_output": PREFERENCE["non_preferred_output"]}

CASES = {
    # name: (the file's other lines, line 5, method, check, message, words the hint must hold)
    "prompt alone": (PROMPT_COMPLETION, {"prompt": "Say hi."}, "supervised", "missing_field",
                     "Line 5: no 'completion'.", "Add 'completion'"),
    "messages beside preferred_output, DPO file": (
        PREFERENCE, MESSAGES_AND_PREFERRED, "dpo", "ambiguous_format",
        "Line 5: mixes keys of different formats: 'messages' (chat) and "
        "'non_preferred_output', 'preferred_output' (preference); an example has one format.",
        'For DPO, put the prompt conversation in "input": {"messages": [...]}'),
    "messages beside preferred_output, chat file": (
        CHAT, MESSAGES_AND_PREFERRED, "supervised", "ambiguous_format",
        "Line 5: mixes keys of different formats: 'messages' (chat) and "
        "'non_preferred_output', 'preferred_output' (preference); an example has one format.",
        "for supervised fine-tuning, remove 'non_preferred_output', 'preferred_output'"),
}


def _file(tmp_path: Path, row: dict, line_5: dict) -> Path:
    rows = [row] * 12
    rows[4] = line_5
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_detection_of_the_cases_they_disagreed_on():
    assert detect_format({"prompt": "Say hi."}) == "prompt_completion"
    assert detect_format(MESSAGES_AND_PREFERRED) is None  # neither chat nor preference: asked
    assert detect_format({"prompt": "x", "preferred_completion": "a",
                          "non_preferred_completion": "b"}) is None


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_and_training_refuse_the_line_in_the_same_words(tmp_path, tiny_model_dir, name):
    row, line_5, method, check, message, fix = CASES[name]
    path = _file(tmp_path, row, line_5)

    checked = runner.invoke(app, ["data", "check", str(path), "--no-tokens", "--json"])
    assert checked.exit_code == 1, checked.output
    (problem,) = json.loads(checked.stdout)["errors"]
    assert (problem["line"], problem["check"], problem["message"]) == (5, check, message)
    assert fix in problem["hint"]

    config = TrainConfig(model=str(tiny_model_dir), training_file=path, method=method,
                         output_dir=tmp_path / "out", validation_split=0,
                         hyperparameters=Hyperparameters(n_epochs=1, batch_size=4))
    with pytest.raises(TrainingError) as refused:
        run_training(config)
    assert refused.value.message == f"train.jsonl: {problem['message']} {problem['hint']}"
    assert (refused.value.code, refused.value.param) == ("invalid_file", "training_file")


def test_a_fixed_file_passes_both(tmp_path, tiny_model_dir):
    """The hint's fix works: with the prompt under input.messages, check and DPO training accept
    the file."""
    path = _file(tmp_path, PREFERENCE, PREFERENCE)
    assert runner.invoke(app, ["data", "check", str(path), "--no-tokens"]).exit_code == 0
    result = run_training(TrainConfig(model=str(tiny_model_dir), training_file=path,
                                      method="dpo", output_dir=tmp_path / "out",
                                      validation_split=0,
                                      hyperparameters=Hyperparameters(n_epochs=1, batch_size=4)))
    assert result.status == "succeeded" and result.steps == 3
