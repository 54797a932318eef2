"""Lineage, model card and technical report from a manifest, an evaluation and the audit log."""

from __future__ import annotations

import pytest
import yaml

from strop.evaluate import stats
from strop.evaluate.compare import Comparison, EvaluationResult
from strop.reports.annex_iv import write_technical_report
from strop.reports.lineage import lineage, related_records
from strop.reports.model_card import write_model_card

MODEL = "ft:smollm2-135m-instruct:acme:support:abc123"


@pytest.fixture
def manifest(tmp_path):
    output = tmp_path / "job-output"
    output.mkdir()
    (output / "results.csv").write_text(
        "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"
        + "".join(f"{step},{3 - step * 0.1:.2f},0.5,{3.1 - step * 0.1:.2f},0.4\n"
                  for step in range(1, 11)))
    return {
        "status": "succeeded", "base_model": "smollm2-135m-instruct",
        "base_model_weights_sha256": "b" * 64, "started_from": None,
        "training_file": "/data/train.jsonl", "training_file_sha256": "1" * 64,
        "validation_file": "/data/valid.jsonl", "validation_file_sha256": "2" * 64,
        "method": "supervised", "fine_tuning": "lora", "precision": "bf16", "seed": 7,
        "config": {"output_dir": str(output), "lora_rank": 16, "lora_alpha": 32,
                   "lora_dropout": 0.0, "lora_target_modules": "all-linear",
                   "max_seq_length": 512},
        "hyperparameters": {"n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 1.0},
        "auto_chose": ["batch_size"], "n_train_examples": 120, "n_validation_examples": 12,
        "steps": 45, "trained_tokens": 61234, "flops": 3.3e13, "wall_time_seconds": 182.5,
        "versions": {"strop": "0.1.0", "torch": "2.13.0"},
    }


@pytest.fixture
def evaluation() -> EvaluationResult:
    base = [1.0] * 18 + [0.0] * 2
    tuned = [1.0] * 6 + [0.0] * 14
    return EvaluationResult(
        {"name": "smollm2-135m-instruct"}, {"name": MODEL},
        {"decoding": "greedy", "max_new_tokens": 64, "n_task_examples": 12,
         "n_retention_items": 20, "n_hallucination_items": 20, "bootstrap_seed": 1},
        [Comparison("task", "rouge_l", True, stats.mean([0.2] * 12), stats.mean([0.61] * 12),
                    stats.paired_delta([0.2] * 12, [0.61] * 12)),
         Comparison("retention", "safety", True, stats.proportion(base),
                    stats.proportion(tuned), stats.paired_delta(base, tuned),
                    stats.paired_ratio(base, tuned))],
        notes=["held-out data limited to the first 12 of 40 examples"], seconds=61.0)


@pytest.fixture
def history(audit_log):
    audit_log.append("file.uploaded", actor="key_1", organization="acme",
                 objects={"file": "file-train"}, hashes={"file": "sha256:" + "1" * 64})
    audit_log.append("data.cleaned", actor="cli", organization="acme",
                 objects={"file": "file-train"},
                 details={"pii_counts": {"EMAIL_ADDRESS": 4, "PHONE_NUMBER": 2}})
    audit_log.append("file.uploaded", actor="key_1", organization="other-org",
                 objects={"file": "file-unrelated"})
    audit_log.append("job.created", actor="key_1", organization="acme",
                 objects={"job": "ftjob-1", "training_file": "file-train"})
    audit_log.append("job.succeeded", actor="worker", organization="acme",
                 objects={"job": "ftjob-1", "model": MODEL})
    audit_log.append("model.evaluated", actor="worker", organization="acme",
                 objects={"model": MODEL}, details={"significant_drops": ["retention/safety"]})
    audit_log.append("model.exported", actor="cli", objects={"model": MODEL})


def test_related_records_follow_the_model_back_to_its_files(history, audit_log):
    related = related_records([MODEL], audit_log.records())
    actions = [record["action"] for record in related]
    assert actions == ["file.uploaded", "data.cleaned", "job.created", "job.succeeded",
                       "model.evaluated", "model.exported"]
    assert all("file-unrelated" not in str(record["objects"]) for record in related)


def test_lineage_is_complete(manifest, history, audit_log):
    trail = lineage(manifest, related_records([MODEL], audit_log.records()))
    assert trail["base_model"]["weights_sha256"] == "b" * 64
    assert trail["data"]["training_file_sha256"] == "1" * 64
    assert trail["data"]["validation_file_sha256"] == "2" * 64
    assert [r["action"] for r in trail["data"]["cleaning_and_redaction"]] == ["data.cleaned"]
    assert trail["training"]["seed"] == 7
    assert trail["training"]["hyperparameters"]["n_epochs"] == 3
    assert trail["training"]["lora"]["lora_rank"] == 16
    assert trail["versions"]["torch"] == "2.13.0"
    assert trail["compute"]["flops"] == 3.3e13
    assert [r["action"] for r in trail["job_history"]] == ["job.created", "job.succeeded"]
    assert [r["action"] for r in trail["evaluations"]] == ["model.evaluated"]
    assert [r["action"] for r in trail["deployments"]] == ["model.exported"]


def test_model_card_has_metadata_and_numbers(tmp_path, manifest, evaluation):
    path = write_model_card(tmp_path, manifest, evaluation.to_dict(),
                            data_summary={"pii_counts": {"EMAIL_ADDRESS": 4},
                                          "exact_duplicates": 3}, name=MODEL)
    assert path.name == "README.md"
    text = path.read_text()
    front = yaml.safe_load(text.split("---")[1])
    assert front["base_model"] == "smollm2-135m-instruct"
    assert front["datasets"] == ["sha256:" + "1" * 64, "sha256:" + "2" * 64]
    metrics = front["model-index"][0]["results"][0]["metrics"]
    assert {metric["type"] for metric in metrics} == {"task/rouge_l", "retention/safety"}
    safety = next(metric for metric in metrics if metric["type"] == "retention/safety")
    assert safety["value"] == 0.3 and safety["args"]["base_value"] == 0.9
    for section in ("## Intended use", "## Training data", "## Training procedure and compute",
                    "## Evaluation", "## Limitations"):
        assert section in text
    assert "0.900 [0.699, 0.972]" in text  # Wilson interval of 18/20
    assert "-0.600" in text and "(significant drop)" in text
    assert "EMAIL_ADDRESS: 4" in text and "3.3e+13 FLOPs" in text and "182.5 s" in text
    assert "trained tokens: 61,234" in text


def test_model_card_without_evaluation_says_so(tmp_path, manifest):
    text = write_model_card(tmp_path / "card.md", manifest).read_text()
    assert "Not evaluated yet" in text and "model-index" not in text


def test_report_has_the_numbers_the_charts_and_no_data_values(tmp_path, manifest, evaluation,
                                                             history, audit_log):
    data_report = {"format": "chat", "examples_in": 130, "examples_out": 120,
                   "exact_duplicates": 8, "near_duplicates": 2, "pii_policy": "mask",
                   "pii_counts": {"EMAIL_ADDRESS": 4, "PHONE_NUMBER": 2}, "pii_examples": 5,
                   "pii_lines": {"EMAIL_ADDRESS": [3, 9]}}
    markdown_path, html_path = write_technical_report(
        tmp_path / "report", MODEL, manifest, evaluation,
        related_records([MODEL], audit_log.records()), audit_log.verify(),
        data_report=data_report)
    markdown = markdown_path.read_text()
    page = html_path.read_text()
    for heading in ("1. General description", "2.2 Data: provenance, selection and checks",
                    "2.4 Validation and testing", "6. Changes through the lifecycle",
                    "9. Post-market monitoring"):
        assert heading in markdown and heading in page
    assert "| EMAIL_ADDRESS | 4 |" in markdown and "<td>PHONE_NUMBER</td><td>2</td>" in page
    assert "0.300 [0.145, 0.519]" in markdown  # tuned safety, Wilson 6/20
    assert "safety: base 0.900" in markdown
    assert "Audit log integrity: verified (7 records)" in markdown
    assert "job.succeeded" in markdown and "model.exported" in markdown
    assert "file-unrelated" not in markdown
    assert (tmp_path / "report" / "comparison.png").stat().st_size > 5000
    assert (tmp_path / "report" / "loss.png").stat().st_size > 5000
    assert '<img src="comparison.png"' in page and "![Training and validation loss" in markdown
    assert "3, 9" not in markdown  # PII line numbers stay out; only counts by type


def test_report_flags_a_tampered_log(tmp_path, manifest, evaluation, history, audit_log):
    log = audit_log.path
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:-1]) + "\n")
    markdown_path, _ = write_technical_report(tmp_path / "r", MODEL, manifest, evaluation, [],
                                              audit_log.verify())
    assert "Audit log integrity: FAILED" in markdown_path.read_text()
