"""The quickstart's own code path, end to end, on the tiny model and a slice of the support
data: a real `strop serve` subprocess driven through the official openai client."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from strop.quickstart import EXAMPLES, QuickstartOptions, Reporter, run, uses_voice


class Recorder(Reporter):
    def __init__(self) -> None:
        self.stages: list[str] = []
        self.check = self.clean = self.estimate = self.evaluation = None
        self.steps: list[tuple[int, int]] = []
        self.rows: list[dict] = []

    def stage(self, number, title):
        self.stages.append(title)

    def data_checked(self, path, report):
        self.check = report

    def data_cleaned(self, report):
        self.clean = report

    def estimated(self, estimate):
        self.estimate = estimate

    def training_progress(self, step, total, metrics):
        self.steps.append((step, total))

    def evaluated(self, evaluation):
        self.evaluation = evaluation

    def reported(self, report):
        self.report = report

    def compared(self, rows, voice_base, voice_tuned):
        self.rows = rows


def _slice_of_support(folder: Path, train: int = 40, validation: int = 6) -> Path:
    source = EXAMPLES / "support"
    folder.mkdir()
    lines = (source / "train.jsonl").read_text().splitlines()
    # The slice holds personal data; one repeated example gives the dedupe step work too.
    (folder / "train.jsonl").write_text("\n".join(lines[:train] + lines[:1]) + "\n")
    lines = (source / "validation.jsonl").read_text().splitlines()
    (folder / "validation.jsonl").write_text("\n".join(lines[:validation]) + "\n")
    questions = json.loads((source / "questions.json").read_text())
    questions["questions"] = questions["questions"][:2]
    (folder / "questions.json").write_text(json.dumps(questions))
    return folder


def test_voice_check_follows_the_dataset_rule():
    voice = json.loads((EXAMPLES / "support" / "questions.json").read_text())["voice"]
    good = f"{voice['greeting']} Returns are free within 30 days. {voice['sign_off']}"
    assert uses_voice(good, voice)
    assert not uses_voice("Returns are free within 30 days.", voice)
    assert not uses_voice(f"{voice['greeting']} Returns are free.", voice)


def test_quickstart_runs_the_whole_lifecycle_and_reuses_its_job(tmp_path, tiny_model_dir,
                                                               monkeypatch):
    # The estimate's wall time comes from a calibration run; on the tiny model it is quick.
    dataset = _slice_of_support(tmp_path / "support")
    options = QuickstartOptions(model=str(tiny_model_dir), dataset=dataset, n_epochs=1,
                                batch_size=8, eval_limit=2, max_answer_tokens=8)
    first = Recorder()
    result = run(options, first)

    assert len(first.stages) == 7
    assert first.check.ok and first.check.n_examples == 41
    assert (first.clean.examples_in, first.clean.examples_out) == (41, 40)
    assert first.clean.pii_counts.get("EMAIL_ADDRESS")
    assert first.estimate.billed_tokens > 0 and first.estimate.epochs == 1
    assert first.steps and first.steps[-1][0] == first.steps[-1][1]  # ran to the last step
    assert result.fine_tuned_model.startswith("ft:tiny-llama:local:support:")
    assert first.evaluation["status"] == "succeeded"
    groups = {c["group"] for c in first.evaluation["result"]["comparisons"]}
    assert "task" in groups and "hallucination" in groups
    assert first.report.evaluated and first.report.html.is_file()
    report_text = first.report.markdown.read_text()
    assert result.fine_tuned_model in report_text and "EMAIL_ADDRESS" in report_text
    assert "@example.com" not in report_text  # PII counts, never values
    assert len(first.rows) == 2 and all("base" in row and "tuned" in row for row in first.rows)
    assert set(result.stage_seconds) == {"check and clean", "estimate", "upload", "fine-tune",
                                         "evaluate", "chat"}

    again = Recorder()
    second = run(options, again)
    assert second.reused_job and second.job_id == result.job_id
    assert not again.steps  # nothing trained twice
    assert again.evaluation["status"] == "succeeded"
