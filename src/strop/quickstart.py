"""The whole lifecycle, end to end, through the official `openai` client.

check and clean the data -> estimate -> upload -> fine-tune (LoRA) -> evaluate base vs tuned
-> ask the base and the tuned model the same unseen question.

Everything after the data step goes over HTTP to a strop service started in the background, so
the quickstart exercises exactly what a user's own code would. A second run reuses the uploaded
files and the finished job instead of training again.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from strop.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUICKSTART_TAG = "quickstart-support-v1"


@dataclass
class QuickstartOptions:
    model: str = "smollm2-135m-instruct"
    dataset: Path = EXAMPLES / "support"
    # One pass at twice the default LoRA rate: the brand voice is a pattern every example
    # repeats, and a single epoch keeps the run within the quickstart's 10 minutes on 2 cores.
    n_epochs: int | str = 1
    batch_size: int | str = 8
    learning_rate_multiplier: float | str = 2.0
    eval_limit: int = 20
    max_answer_tokens: int = 80
    base_url: str | None = None  # an already running strop; default: start one
    seed: int = 7


@dataclass
class QuickstartResult:
    job_id: str
    fine_tuned_model: str
    reused_job: bool
    stage_seconds: dict[str, float] = field(default_factory=dict)
    evaluation: dict | None = None
    side_by_side: list[dict] = field(default_factory=list)
    voice_base: float = 0.0
    voice_tuned: float = 0.0
    report: object | None = None  # strop.reports.auditor_package.AuditorPackage


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def background_service(log_path: Path, settings: dict[str, str]) -> Iterator[str]:
    """Start `strop serve` on a free localhost port; yield its /v1 base URL; stop it after.

    `settings` become STROP_<NAME> environment variables of the service."""
    import httpx

    port = _free_port()
    log = open(log_path, "ab")
    environment = os.environ | {f"STROP_{name.upper()}": value for name, value in settings.items()}
    process = subprocess.Popen(
        [sys.executable, "-m", "strop.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=environment,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"strop serve exited with {process.returncode}; see {log_path}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"strop serve did not answer within 120 s; see {log_path}")
            time.sleep(0.5)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def uses_voice(text: str, voice: dict) -> bool:
    """Whether a reply carries the brand voice: its greeting and its sign-off."""
    normalized = " ".join(text.lower().split())
    return all(" ".join(voice[key].lower().split()) in normalized
               for key in ("greeting", "sign_off") if voice.get(key))


Reporter = Callable[[str, object], None]


class Reporter:
    """What the quickstart tells its user; the CLI prints, tests record. Each hook is optional."""

    def stage(self, number: int, title: str) -> None: ...
    def data_checked(self, path: Path, report) -> None: ...
    def data_cleaned(self, report) -> None: ...
    def estimated(self, estimate) -> None: ...
    def note(self, message: str) -> None: ...
    def training_progress(self, step: int, total: int, metrics: dict) -> None: ...
    def evaluated(self, evaluation: dict) -> None: ...
    def reported(self, report) -> None: ...
    def compared(self, rows: list[dict], voice_base: float, voice_tuned: float) -> None: ...


def _client(base_url: str):
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key=os.environ.get("STROP_API_KEY", "strop-local"),
                  max_retries=2, timeout=120)


def _upload_once(client, path: Path) -> str:
    """Upload `path` unless an identical processed upload (same name and bytes) exists."""
    size = path.stat().st_size
    for existing in client.files.list(purpose="fine-tune"):
        if existing.filename == path.name and existing.bytes == size and \
                existing.status == "processed":
            return existing.id
    with open(path, "rb") as handle:
        uploaded = client.files.create(file=handle, purpose="fine-tune")
    return client.files.wait_for_processing(uploaded.id, poll_interval=0.5).id


def _finished_job(client, training_file: str, model: str):
    """A succeeded quickstart job on this exact training file and base model, if any."""
    for job in client.fine_tuning.jobs.list(metadata={"strop": QUICKSTART_TAG}, limit=20):
        if job.training_file == training_file and job.status == "succeeded" and \
                job.model == model:
            return job
    return None


def _follow(client, job_id: str, reporter: Reporter, poll: float = 1.0):
    """Poll the job until it ends, passing metrics events to the reporter in order."""
    seen: set[str] = set()
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        fresh = [event for event in client.fine_tuning.jobs.list_events(job_id, limit=100)
                 if event.id not in seen]
        for event in reversed(fresh):  # the API lists newest first
            seen.add(event.id)
            data = event.data if isinstance(event.data, dict) else {}
            if event.type == "metrics" and data.get("step"):
                reporter.training_progress(int(data["step"]), int(data.get("total_steps") or 0),
                                           data)
            elif event.level in ("warn", "warning", "error"):
                reporter.note(f"{event.level}: {event.message}")
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(poll)


def _evaluation(client, job_id: str, timeout: float = 1800) -> dict:
    """The job's base-vs-tuned evaluation (strop's route), waiting while it is computed."""
    deadline = time.monotonic() + timeout
    while True:
        result = client.get(f"/fine_tuning/jobs/{job_id}/evaluation", cast_to=object)
        if result.get("status") in ("succeeded", "failed") or time.monotonic() > deadline:
            return result
        time.sleep(1)


def _ask_side_by_side(client, base: str, tuned: str, questions: dict, max_tokens: int):
    rows = []
    for question in questions["questions"]:
        messages = [{"role": "system", "content": questions["system"]},
                    {"role": "user", "content": question["content"]}]
        answers = {}
        for label, model in (("base", base), ("tuned", tuned)):
            reply = client.chat.completions.create(model=model, messages=messages,
                                                   temperature=0, max_tokens=max_tokens)
            answers[label] = reply.choices[0].message.content or ""
        rows.append({"question": question["content"], "topic": question["topic"], **answers,
                     "base_voice": uses_voice(answers["base"], questions["voice"]),
                     "tuned_voice": uses_voice(answers["tuned"], questions["voice"])})
    return rows


def run(options: QuickstartOptions, reporter: Reporter) -> QuickstartResult:
    from strop.data.clean import clean_file
    from strop.data.tokenizer import load_tokenizer
    from strop.data.validate import validate_file
    from strop.estimate import estimate
    from strop.reports.auditor_package import write_auditor_package

    timings: dict[str, float] = {}
    settings = Settings.load()
    workdir = settings.home / "quickstart"
    workdir.mkdir(parents=True, exist_ok=True)
    train_path = options.dataset / "train.jsonl"
    validation_path = options.dataset / "validation.jsonl"
    questions = json.loads((options.dataset / "questions.json").read_text())

    started = time.perf_counter()
    reporter.stage(1, f"Check the data ({train_path})")
    tokenizer, context_length = load_tokenizer(options.model, progress=reporter.note)
    reporter.data_checked(train_path, validate_file(train_path, tokenizer, context_length))
    reporter.stage(2, "Clean it: remove duplicates, pseudonymize personal data")
    cleaned = workdir / "support.clean.jsonl"
    reporter.data_cleaned(clean_file(train_path, cleaned, pii="pseudonymize",
                                     report_path=workdir / "support.clean.report.json"))
    timings["check and clean"] = time.perf_counter() - started

    started = time.perf_counter()
    reporter.stage(3, "Estimate cost and time")
    reporter.estimated(estimate(cleaned, options.model, options.n_epochs))
    timings["estimate"] = time.perf_counter() - started

    with ExitStack() as stack:
        base_url = options.base_url or stack.enter_context(background_service(
            workdir / "server.log",
            {"evaluation_limit": str(options.eval_limit),
             "evaluation_max_new_tokens": str(options.max_answer_tokens)}))
        client = _client(base_url)
        started = time.perf_counter()
        reporter.stage(4, f"Upload through the OpenAI client ({base_url})")
        training_file = _upload_once(client, cleaned)
        validation_file = _upload_once(client, validation_path)
        timings["upload"] = time.perf_counter() - started

        started = time.perf_counter()
        job = _finished_job(client, training_file, options.model)
        reused = job is not None
        if reused:
            reporter.stage(5, f"Fine-tune: reusing finished job {job.id} (delete "
                              f"{workdir.parent} to start over)")
        else:
            reporter.stage(5, f"Fine-tune {options.model} with LoRA")
            job = client.fine_tuning.jobs.create(
                model=options.model, training_file=training_file,
                validation_file=validation_file, suffix="support", seed=options.seed,
                metadata={"strop": QUICKSTART_TAG},
                method={"type": "supervised", "supervised": {"hyperparameters": {
                    "n_epochs": options.n_epochs, "batch_size": options.batch_size,
                    "learning_rate_multiplier": options.learning_rate_multiplier}}})
            job = _follow(client, job.id, reporter)
        if job.status != "succeeded":
            message = job.error.message if job.error else job.status
            raise RuntimeError(f"Fine-tuning job {job.id} ended {job.status}: {message}")
        timings["fine-tune"] = time.perf_counter() - started

        started = time.perf_counter()
        reporter.stage(6, "Evaluate base vs tuned on held-out data")
        evaluation = _evaluation(client, job.id)
        reporter.evaluated(evaluation)
        report = write_auditor_package(settings, job.fine_tuned_model, workdir / "report",
                                       data_report=workdir / "support.clean.report.json",
                                       actor="quickstart")
        reporter.reported(report)
        timings["evaluate"] = time.perf_counter() - started

        started = time.perf_counter()
        reporter.stage(7, "Ask both models unseen questions")
        rows = _ask_side_by_side(client, options.model, job.fine_tuned_model, questions,
                                 options.max_answer_tokens)
        voice_base = sum(row["base_voice"] for row in rows) / len(rows)
        voice_tuned = sum(row["tuned_voice"] for row in rows) / len(rows)
        reporter.compared(rows, voice_base, voice_tuned)
        timings["chat"] = time.perf_counter() - started
    return QuickstartResult(job.id, job.fine_tuned_model, reused, timings, evaluation, rows,
                            voice_base, voice_tuned, report)
