"""`strop data check|clean|split` and `strop estimate`: exit codes, tables and --json."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

from typer.testing import CliRunner

from strop.cli import app

FIXTURES = Path(__file__).parent / "fixtures" / "data"
runner = CliRunner()


def test_check_clean_file_exits_zero_with_stats(tiny_model_dir):
    result = runner.invoke(app, ["data", "check", str(FIXTURES / "valid_chat.jsonl"),
                                 "--model", str(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    assert "12 chat examples" in result.output and "valid" in result.output
    assert "Only 12 examples" in result.output  # readiness guidance


def test_check_reports_problems_with_exit_one_and_json():
    result = runner.invoke(app, ["data", "check", str(FIXTURES / "unknown_role.jsonl"),
                                 "--no-tokens", "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["error"]["code"] == "invalid_training_file"
    assert payload["errors"][0]["line"] == 5 and payload["errors"][0]["check"] == "unknown_role"


def test_check_missing_file_is_a_usage_error(tmp_path):
    result = runner.invoke(app, ["data", "check", str(tmp_path / "nope.jsonl"), "--no-tokens"])
    assert result.exit_code == 2


def test_clean_and_split_commands(tmp_path):
    out = tmp_path / "clean.jsonl"
    result = runner.invoke(app, ["data", "clean", str(FIXTURES / "duplicates.jsonl"), "-o",
                                 str(out), "--pii", "report", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["examples_out"] == 10 and out.is_file()
    assert runner.invoke(app, ["data", "clean", str(FIXTURES / "duplicates.jsonl"), "-o",
                               str(out), "--pii", "shred"]).exit_code == 2
    assert runner.invoke(app, ["data", "clean", str(FIXTURES / "invalid_json.jsonl"), "-o",
                               str(out)]).exit_code == 1
    split = runner.invoke(app, ["data", "split", str(out), "--validation", "0.2", "--seed", "1",
                                "--train-out", str(tmp_path / "t.jsonl"),
                                "--validation-out", str(tmp_path / "v.jsonl")])
    assert split.exit_code == 0, split.output
    assert "8 training examples" in split.output and "2 validation examples" in split.output


def test_estimate_command(tiny_model_dir, monkeypatch):
    module = types.ModuleType("strop.train.throughput")
    module.tokens_per_second = lambda model, fine_tuning="lora", max_seq_length=512: 250.0
    monkeypatch.setitem(sys.modules, "strop.train.throughput", module)
    result = runner.invoke(app, ["estimate", str(FIXTURES / "valid_chat.jsonl"), "--model",
                                 str(tiny_model_dir), "--epochs", "2", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["epochs"] == 2 and payload["billed_tokens"] == 2 * payload["tokens_per_epoch"]
    assert payload["wall_seconds"] == payload["billed_tokens"] / 250.0
    table = runner.invoke(app, ["estimate", str(FIXTURES / "valid_chat.jsonl"), "--model",
                                str(tiny_model_dir)])
    assert table.exit_code == 0 and "GPT-4.1 nano" in table.output
    bad = runner.invoke(app, ["estimate", str(FIXTURES / "valid_chat.jsonl"), "--model",
                              str(tiny_model_dir), "--epochs", "99"])
    assert bad.exit_code == 2


def test_a_lone_surrogate_is_reported_by_every_command_without_a_traceback(tmp_path,
                                                                            tiny_model_dir):
    lines = [json.dumps({"messages": [{"role": "user", "content": f"question {i} on item {i}"},
                                      {"role": "assistant", "content": f"answer {i}"}]})
             for i in range(12)]
    lines[2] = lines[2].replace("question 2", "bad \\ud800 text")  # valid JSON, not UTF-8-able
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(lines) + "\n")
    check = runner.invoke(app, ["data", "check", str(path), "--model", str(tiny_model_dir),
                                "--json"])
    assert check.exit_code == 1 and isinstance(check.exception, SystemExit), check.exception
    payload = json.loads(check.stdout)
    assert [(e["line"], e["check"]) for e in payload["errors"]] == [(3, "lone_surrogate")]
    assert payload["stats"]["examples"] == 11  # tokens counted, without the bad line
    table = runner.invoke(app, ["data", "check", str(path), "--model", str(tiny_model_dir)])
    assert table.exit_code == 1 and "lone_surrogate" in table.output
    reason = "Line 3: messages[0].content contains a lone surrogate \\ud800"
    for args in (["data", "clean", str(path), "-o", str(tmp_path / "out.jsonl")],
                 ["data", "split", str(path)],
                 ["estimate", str(path), "--model", str(tiny_model_dir)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit), result.exception
        assert reason in " ".join(result.output.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.jsonl"]  # nothing written
