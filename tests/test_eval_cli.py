"""`strop eval`, `strop report` and `strop audit` on a real (tiny) training run's output."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from strop import audit
from strop.cli import app
from strop.train import Hyperparameters, TrainConfig
from strop.train.run import run_training

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread_per_module")


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory, tiny_model_dir, one_thread_per_module):
    folder = tmp_path_factory.mktemp("job")
    rows = [{"messages": [{"role": "user", "content": f"Order {index} status?"},
                          {"role": "assistant", "content": '{"answer": "yes"}'}]}
            for index in range(16)]
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / "valid.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows[:4]))
    run_training(TrainConfig(
        model=str(tiny_model_dir), training_file=folder / "train.jsonl",
        validation_file=folder / "valid.jsonl", output_dir=folder / "out",
        hyperparameters=Hyperparameters(n_epochs=2, batch_size=4,
                                        learning_rate_multiplier=20)))
    return folder


def test_eval_then_report_from_a_job_folder(job_dir, tmp_path, audit_log):
    out = job_dir / "out"
    result = runner.invoke(app, ["eval", str(out), "--data", str(job_dir / "valid.jsonl"),
                                 "--limit", "4", "--max-new-tokens", "8"])
    assert result.exit_code == 0, result.output
    assert "retention" in result.output and "hallucination_rate" in result.output
    stored = json.loads((out / "evaluation.json").read_text())
    assert stored["settings"]["n_retention_items"] == 4
    assert stored["tuned"]["name"] == str(out)
    metrics = {(c["group"], c["metric"]) for c in stored["comparisons"]}
    assert {("task", "loss"), ("task", "format_adherence"),
            ("retention", "overall")} <= metrics
    loss = next(c for c in stored["comparisons"] if c["metric"] == "loss")
    assert loss["tuned"]["value"] < loss["base"]["value"]  # it learned its training data
    assert (out / "evaluation.png").stat().st_size > 5000
    evaluated = audit_log.records(str(out))
    assert [record["action"] for record in evaluated] == ["model.evaluated"]
    assert evaluated[0]["hashes"]["evaluation"].startswith("sha256:")

    report = runner.invoke(app, ["report", str(out), "-o", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert f"{loss['tuned']['value']:.3f}" in markdown
    assert "model.evaluated" in markdown
    assert (tmp_path / "report" / "loss.png").is_file()
    card = (tmp_path / "report" / "README.md").read_text()
    assert "base_model:" in card and "sha256:" in card


def test_audit_verify_and_log_commands(audit_log):
    audit_log.append("key.created", actor="cli", organization="acme", objects={"key": "key_1"})
    audit_log.append("key.revoked", actor="cli", organization="acme", objects={"key": "key_1"})
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 0 and "2 records intact" in result.output
    head = result.output.split("head ")[1].split(" ")[0]
    listed = runner.invoke(app, ["audit", "log", "--object", "key_1", "--json"])
    assert [json.loads(line)["action"] for line in listed.output.splitlines()] == [
        "key.created", "key.revoked"]
    log = audit_log.path
    log.write_text(log.read_text().replace("key.revoked", "key.kept"))
    broken = runner.invoke(app, ["audit", "verify", "--anchor", head])
    assert broken.exit_code == 1
    assert "record 2 (line 2): content does not match its hash" in broken.output


def test_eval_names_a_missing_model_and_an_endpoint_without_base():
    missing = runner.invoke(app, ["eval", "/nonexistent/folder"])
    assert missing.exit_code == 2 and "neither an ft: model name nor a folder" in missing.output
    endpoint = runner.invoke(app, ["eval", "some-model", "--endpoint", "http://localhost:9/v1"])
    assert endpoint.exit_code == 2 and "--base" in endpoint.output
