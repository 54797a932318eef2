"""The whole OpenAI fine-tuning flow through the official client against a served app with its
worker, on the tiny model: upload, train, watch, checkpoints, models, chat, export, delete;
pause/resume/cancel of a running job; a bad file failing its job."""

from __future__ import annotations

import io
import json
import tarfile

import httpx
import openai
import pytest

from server_harness import chat_examples, client, serving, wait_for, write_jsonl
from strop.server import create_app
from strop.settings import Settings


@pytest.fixture
def settings(strop_home, database_url, request):
    # Evaluation after training costs decoding time; only tests marked `evaluate` pay for it.
    evaluate = request.node.get_closest_marker("evaluate") is not None
    return Settings.load(home=strop_home, database={"url": database_url},
                         worker={"poll_seconds": 0.05, "heartbeat_seconds": 0.5},
                         evaluation={"after_training": evaluate, "limit": 4,
                                     "max_new_tokens": 6})


@pytest.fixture
def base_url(settings):
    with serving(create_app(settings, workers=1)) as url:
        yield url


@pytest.fixture
def api(base_url):
    return client(base_url)


@pytest.fixture
def loose(base_url):
    """The client without strict validation: its types do not know the `paused` status."""
    return client(base_url, strict=False)


def _upload(api, path):
    uploaded = api.files.create(file=path.open("rb"), purpose="fine-tune")
    return api.files.wait_for_processing(uploaded.id, poll_interval=0.05, max_wait_seconds=30)


def _wait_status(api, job_id, statuses, timeout=180):
    return wait_for(lambda: (job := api.fine_tuning.jobs.retrieve(job_id)).status in statuses
                    and job, timeout=timeout)


def _all_events(api, job_id):
    return list(api.fine_tuning.jobs.list_events(job_id, limit=50))


@pytest.mark.evaluate
def test_full_flow_upload_train_serve_export_delete(api, base_url, tmp_path, tiny_model_dir,
                                                   audit_log):
    training = _upload(api, write_jsonl(tmp_path / "train.jsonl", chat_examples(12)))
    assert training.status == "processed"
    validation = _upload(api, write_jsonl(tmp_path / "valid.jsonl", chat_examples(14)[12:]))
    job = api.fine_tuning.jobs.create(
        model=str(tiny_model_dir), training_file=training.id, validation_file=validation.id,
        suffix="demo", seed=3,
        method={"type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 4}}})
    done = _wait_status(api, job.id, {"succeeded", "failed", "cancelled"})
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model == f"ft:tiny-llama:local:demo:{done.fine_tuned_model.split(':')[-1]}"
    assert done.trained_tokens and done.trained_tokens > 0
    assert done.finished_at >= done.created_at and done.estimated_finish is None
    # "auto" is replaced by the value training chose; what the user set is kept.
    assert done.hyperparameters.n_epochs == 2 and done.hyperparameters.batch_size == 4
    assert isinstance(done.hyperparameters.learning_rate_multiplier, float)

    events = _all_events(api, job.id)
    messages = [event.message for event in reversed(events)]  # oldest first
    assert messages[0] == f"Created fine-tuning job: {job.id}"
    for expected in (f"Validating training file: {training.id}",
                     "Files validated, moving job to queued state", "Fine-tuning job started",
                     "The job has successfully completed"):
        assert expected in messages
    assert any(message.startswith("Checkpoint created at step") for message in messages)
    assert any(message.startswith("New fine-tuned model created") for message in messages)
    metrics = [event for event in events if event.type == "metrics"]
    assert metrics and metrics[0].data["step"] == 6 and metrics[-1].data["step"] == 1
    assert metrics[0].data["total_steps"] == 6 and metrics[0].data["train_loss"] > 0
    assert [event.created_at for event in events] == sorted(
        (event.created_at for event in events), reverse=True)

    checkpoints = api.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [checkpoint.step_number for checkpoint in checkpoints] == [6, 3]
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-6"
    assert checkpoints[0].metrics.train_loss is not None and checkpoints[0].metrics.step == 6

    evaluation = wait_for(lambda: (state := api.get(
        f"/fine_tuning/jobs/{job.id}/evaluation", cast_to=object))["status"] in
        ("succeeded", "failed") and state, timeout=180)
    assert evaluation["status"] == "succeeded", evaluation["error"]
    assert evaluation["result"]["tuned"]["name"] == done.fine_tuned_model
    groups = {comparison["group"] for comparison in evaluation["result"]["comparisons"]}
    assert {"task", "hallucination"} <= groups and any(g.startswith("retention") for g in groups)
    assert any(event.message.startswith("Evaluation finished")
               for event in _all_events(api, job.id))

    (results_id,) = done.result_files
    results = api.files.retrieve(results_id)
    assert results.purpose == "fine-tune-results" and results.status == "processed"
    csv = api.files.content(results_id).text.splitlines()
    assert csv[0].startswith("step,train_loss,train_accuracy")
    assert len(csv) == 7

    listed = {model.id: model for model in api.models.list()}
    assert done.fine_tuned_model in listed and listed[done.fine_tuned_model].owned_by == "local"
    assert f"{done.fine_tuned_model}:ckpt-step-3" in listed
    assert api.models.retrieve(done.fine_tuned_model).id == done.fine_tuned_model

    reply = api.chat.completions.create(model=done.fine_tuned_model, max_tokens=5, temperature=0,
                                        messages=[{"role": "user", "content": "What is 3 plus two?"}])
    assert reply.model == done.fine_tuned_model
    assert reply.usage.completion_tokens >= 1
    stream = api.chat.completions.create(model=f"{done.fine_tuned_model}:ckpt-step-3", max_tokens=5,
                                         stream=True, temperature=0,
                                         messages=[{"role": "user", "content": "Hello"}])
    chunks = list(stream)
    assert chunks and chunks[-1].choices[0].finish_reason in ("stop", "length")

    archive = httpx.get(f"{base_url}/strop/archive/{done.fine_tuned_model}", timeout=60)
    assert archive.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        names = tar.getnames()
    assert any(name.endswith("/adapter_config.json") for name in names)
    assert any(name.endswith("/adapter_model.safetensors") for name in names)

    deleted = api.models.delete(done.fine_tuned_model)
    assert deleted.deleted is True
    assert done.fine_tuned_model not in {model.id for model in api.models.list()}
    with pytest.raises(openai.NotFoundError):
        api.models.retrieve(done.fine_tuned_model)
    with pytest.raises(openai.NotFoundError):
        api.chat.completions.create(model=done.fine_tuned_model, max_tokens=2,
                                    messages=[{"role": "user", "content": "Hello"}])
    with pytest.raises(openai.BadRequestError):  # a finished job cannot be cancelled
        api.fine_tuning.jobs.cancel(job.id)

    from strop import audit

    actions = [record["action"] for record in audit_log.records(job.id)]
    for expected in ("job.created", "file.validated", "job.started", "job.succeeded"):
        assert expected in actions
    model_actions = [record["action"] for record in audit_log.records(done.fine_tuned_model)]
    assert model_actions == ["job.succeeded", "evaluation.completed", "model.exported",
                             "model.deleted"]
    assert "file.uploaded" in [record["action"] for record in audit_log.records(training.id)]
    assert audit_log.verify().ok


def test_a_tuned_model_can_be_tuned_again(api, tmp_path, tiny_model_dir):
    training = _upload(api, write_jsonl(tmp_path / "train.jsonl", chat_examples(10)))
    hyper = {"n_epochs": 1, "batch_size": 5}
    first = api.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file=training.id,
                                        hyperparameters=hyper)
    first = _wait_status(api, first.id, {"succeeded", "failed"})
    assert first.status == "succeeded", first.error
    second = api.fine_tuning.jobs.create(model=first.fine_tuned_model, training_file=training.id,
                                         hyperparameters=hyper, suffix="stage2")
    second = _wait_status(api, second.id, {"succeeded", "failed"})
    assert second.status == "succeeded", second.error
    assert second.model == first.fine_tuned_model
    assert second.fine_tuned_model.startswith("ft:tiny-llama:local:stage2:")


def test_pause_resume_then_cancel_a_running_job(api, loose, tmp_path, tiny_model_dir):
    training = _upload(api, write_jsonl(tmp_path / "train.jsonl", chat_examples(12)))
    job = api.fine_tuning.jobs.create(
        model=str(tiny_model_dir), training_file=training.id,
        hyperparameters={"n_epochs": 50, "batch_size": 1})
    running = wait_for(lambda: (current := api.fine_tuning.jobs.retrieve(job.id)).estimated_finish
                       and current)
    assert running.status == "running" and running.estimated_finish >= running.created_at
    assert running.trained_tokens > 0
    paused = loose.fine_tuning.jobs.pause(job.id)
    assert paused.status == "paused"
    stopped = wait_for(lambda: next((event for event in _all_events(api, job.id)
                                     if event.message.startswith("Fine-tuning job paused at step")),
                                    None))
    paused_step = int(stopped.message.rsplit(" ", 1)[-1])
    assert loose.fine_tuning.jobs.retrieve(job.id).status == "paused"
    with pytest.raises(openai.BadRequestError):
        loose.fine_tuning.jobs.pause(job.id)

    resumed = loose.fine_tuning.jobs.resume(job.id)
    assert resumed.status in ("queued", "running")
    wait_for(lambda: any(event.type == "metrics" and event.data["step"] > paused_step
                         for event in _all_events(api, job.id)))
    messages = [event.message for event in _all_events(api, job.id)]
    assert f"Fine-tuning job resumed from step-{paused_step}" in messages
    steps_after = [event.data["step"] for event in _all_events(api, job.id)
                   if event.type == "metrics"]
    assert min(step for step in steps_after if step > paused_step) == paused_step + 1

    cancelled = api.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    wait_for(lambda: "Fine-tuning job cancelled" in
             [event.message for event in _all_events(api, job.id)])
    final = api.fine_tuning.jobs.retrieve(job.id)
    assert final.status == "cancelled" and final.fine_tuned_model is None


def test_a_bad_training_file_fails_the_job_not_the_create_call(api, tmp_path, tiny_model_dir):
    lines = [json.dumps(example) for example in chat_examples(12)]
    lines[6] = json.dumps({"messages": [{"role": "wizard", "content": "hi"}]})
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    uploaded = _upload(api, bad)
    assert uploaded.status == "error"
    job = api.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file=uploaded.id)
    failed = _wait_status(api, job.id, {"failed", "succeeded"})
    assert failed.status == "failed"
    assert failed.error.param == "training_file"
    assert "line 7" in failed.error.message.lower()
    assert failed.fine_tuned_model is None and failed.finished_at is not None
    assert any(event.level == "error" for event in _all_events(api, job.id))


def test_too_few_examples_fail_with_openai_code(api, tmp_path, tiny_model_dir):
    small = _upload(api, write_jsonl(tmp_path / "small.jsonl", chat_examples(5)))
    assert small.status == "processed"  # the count rule applies when a job trains on it
    job = api.fine_tuning.jobs.create(model=str(tiny_model_dir), training_file=small.id)
    failed = _wait_status(api, job.id, {"failed", "succeeded"})
    assert failed.status == "failed"
    assert failed.error.code == "invalid_n_examples"


def _preference_examples(count: int) -> list[dict]:
    return [{"input": {"messages": [{"role": "user", "content": f"What is {n} plus two?"}]},
             "preferred_output": [{"role": "assistant", "content": f"{n} plus two is {n + 2}."}],
             "non_preferred_output": [{"role": "assistant", "content": "I do not know."}]}
            for n in range(count)]


def test_dpo_job_with_a_validation_file(api, tmp_path, tiny_model_dir):
    training = _upload(api, write_jsonl(tmp_path / "train.jsonl", _preference_examples(10)))
    validation = _upload(api, write_jsonl(tmp_path / "valid.jsonl", _preference_examples(10)[:3]))
    job = api.fine_tuning.jobs.create(
        model=str(tiny_model_dir), training_file=training.id, validation_file=validation.id,
        method={"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 1, "batch_size": 5,
                                                             "beta": 0.2}}})
    assert job.method.dpo.hyperparameters.beta == 0.2
    done = _wait_status(api, job.id, {"succeeded", "failed"})
    assert done.status == "succeeded", done.error
    assert done.validation_file == validation.id
    messages = [event.message for event in _all_events(api, job.id)]
    assert f"Validating validation file: {validation.id}" in messages
    metrics = [event.data for event in _all_events(api, job.id) if event.type == "metrics"]
    assert metrics[0]["valid_loss"] is not None
