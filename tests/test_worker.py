"""The worker: a job survives its worker being killed mid-run (resumed from its last
checkpoint), crash loops end as failed with a reason, live workers are left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from server_harness import chat_examples, wait_for, write_jsonl
from strop.settings import Settings
from strop.store import Store, access
from strop.store import jobs as job_queries
from strop.store.files import add_file, receive_blob
from strop.store.tables import Checkpoint, Event, Job, JobAttempt, TunedModel
from strop.worker import Worker


# 12 examples, 1 held out for validation: 11 trained, batch 4 -> 3 steps an epoch.
TOTAL_STEPS = 6 * 3


@pytest.fixture
def settings(strop_home, database_url):
    return Settings.load(home=strop_home, database={"url": database_url},
                         worker={"poll_seconds": 0.05, "heartbeat_seconds": 0.2})


@pytest.fixture
def store(settings):
    return Store(settings.database_url)


def _queue_job(settings, store, tmp_path, model, epochs: int, batch_size: int = 1) -> str:
    path = write_jsonl(tmp_path / "train.jsonl", chat_examples(12))
    with path.open("rb") as source:
        blob = receive_blob(settings.files_dir, source, settings.server.max_upload_bytes)
    with store.session() as session:
        organization = access.local_organization(session)
        upload = add_file(session, settings.files_dir, blob, organization_id=organization.id,
                          filename=path.name, purpose="fine-tune", status="processed")
        job = job_queries.create_job(
            session, organization_id=organization.id, model=str(model), base_model=str(model),
            training_file=upload.id, validation_file=None, seed=1, suffix=None, metadata=None,
            method={"type": "supervised", "supervised": {"hyperparameters": {
                "n_epochs": epochs, "batch_size": batch_size,
                "learning_rate_multiplier": "auto"}}})
        return job.id


def _job(store, job_id) -> Job:
    with store.session() as session:
        return session.scalar(select(Job).where(Job.id == job_id))


def _messages(store, job_id) -> list[str]:
    with store.session() as session:
        return list(session.scalars(select(Event.message).where(Event.job_id == job_id)
                                    .order_by(Event.seq)))


def _metric_steps(store, job_id) -> list[int]:
    with store.session() as session:
        rows = session.scalars(select(Event).where(Event.job_id == job_id, Event.type == "metrics")
                               .order_by(Event.seq))
        return [row.data["step"] for row in rows]


def test_killed_worker_process_is_recovered_from_its_last_checkpoint(settings, store, tmp_path,
                                                                      tiny_model_dir):
    job_id = _queue_job(settings, store, tmp_path, tiny_model_dir, epochs=6, batch_size=4)
    environment = dict(os.environ, STROP_HOME=str(settings.home),
                       STROP_DATABASE_URL=settings.database_url,
                       STROP_WORKER_POLL_SECONDS="0.05", STROP_WORKER_HEARTBEAT_SECONDS="0.2")
    process = subprocess.Popen([sys.executable, "-c", "from strop.cli import main; main()", "worker"],
                               env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def first_checkpoint():
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            with store.session() as session:
                return session.scalar(select(Checkpoint.step_number)
                                      .where(Checkpoint.job_id == job_id))
        wait_for(first_checkpoint, timeout=180, interval=0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    stuck = _job(store, job_id)
    assert stuck.status == "running" and stuck.worker_id is not None
    recorded_before = _metric_steps(store, job_id)
    assert max(recorded_before) < TOTAL_STEPS, "the run finished before it could be killed"

    worker = Worker(settings, store)
    assert worker.recover_stale() == [job_id]
    recovered = _job(store, job_id)
    assert recovered.status == "queued" and recovered.worker_id is None
    checkpoint_step = int(recovered.resume_from.rsplit("step-", 1)[-1])
    assert any("stopped unexpectedly; resuming from the checkpoint at step "
               f"{checkpoint_step}" in message for message in _messages(store, job_id))

    assert worker.run_once() is True
    finished = _job(store, job_id)
    assert finished.status == "succeeded", finished.error
    assert finished.fine_tuned_model and finished.worker_id is None
    # The run may have gone past its checkpoint before the kill; the resumed run redoes those
    # steps from the checkpoint on, so its metrics follow everything recorded before the kill.
    steps = _metric_steps(store, job_id)
    assert steps[:len(recorded_before)] == recorded_before
    assert steps[len(recorded_before):] == list(range(checkpoint_step + 1, TOTAL_STEPS + 1))
    # Each attempt names the worker (host, process) that ran it and how it ended.
    with store.session() as session:
        attempts = session.scalars(select(JobAttempt).where(JobAttempt.job_id == job_id)
                                   .order_by(JobAttempt.number)).all()
        started = [row.data["worker"] for row in session.scalars(
            select(Event).where(Event.job_id == job_id, Event.message.like("Fine-tuning job %"),
                                Event.data.is_not(None)).order_by(Event.seq))
            if row.data and "worker" in row.data]
    assert [(row.number, row.pid, row.outcome) for row in attempts] == [
        (1, process.pid, "lost"), (2, os.getpid(), "succeeded")]
    assert attempts[1].worker_id == worker.worker_id and attempts[0].ended_at is not None
    assert [entry["pid"] for entry in started] == [process.pid, os.getpid()]


def test_job_of_a_dead_worker_without_checkpoint_restarts_and_crash_loops_fail(settings, store,
                                                                                tmp_path,
                                                                                tiny_model_dir):
    job_id = _queue_job(settings, store, tmp_path, tiny_model_dir, epochs=1)
    worker = Worker(settings, store)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for attempt in range(1, settings.worker.max_attempts + 2):
        with store.session() as session:
            job = session.scalar(select(Job).where(Job.id == job_id))
            job.status, job.worker_id = "running", f"{os.uname().nodename}:{dead.pid}:gone"
        assert worker.recover_stale() == [job_id]
        job = _job(store, job_id)
        if attempt <= settings.worker.max_attempts:
            assert job.status == "queued" and job.resume_from is None
        else:
            assert job.status == "failed"
            assert job.error["code"] == "worker_lost"
            assert "stopped unexpectedly" in job.error["message"]
    assert any("restarting from the beginning" in message for message in _messages(store, job_id))


def test_live_workers_are_left_alone_until_their_heartbeat_goes_stale(settings, store, tmp_path,
                                                                      tiny_model_dir):
    job_id = _queue_job(settings, store, tmp_path, tiny_model_dir, epochs=1)
    alive = f"{os.uname().nodename}:{os.getpid()}:other"
    with store.session() as session:
        job = session.scalar(select(Job).where(Job.id == job_id))
        job.status, job.worker_id, job.heartbeat_at = "running", alive, time.time()
    worker = Worker(settings, store)
    assert worker.recover_stale() == []
    with store.session() as session:
        session.scalar(select(Job).where(Job.id == job_id)).heartbeat_at = (
            time.time() - settings.worker.stale_after_seconds - 1)
    assert worker.recover_stale() == [job_id]


def test_cancel_of_a_queued_job_is_never_run(settings, store, tmp_path, tiny_model_dir):
    job_id = _queue_job(settings, store, tmp_path, tiny_model_dir, epochs=1)
    with store.session() as session:
        job_queries.cancel(session, session.scalar(select(Job).where(Job.id == job_id)))
    assert Worker(settings, store).run_once() is False
    assert _job(store, job_id).status == "cancelled"


def test_a_worker_shutting_down_checkpoints_and_requeues_its_job(settings, store, tmp_path,
                                                                 tiny_model_dir):
    import threading

    job_id = _queue_job(settings, store, tmp_path, tiny_model_dir, epochs=6, batch_size=4)
    first = Worker(settings, store)
    thread = threading.Thread(target=first.run_forever)
    thread.start()
    wait_for(lambda: _metric_steps(store, job_id), timeout=120, interval=0.02)
    first.stop()
    thread.join(timeout=120)
    assert not thread.is_alive()
    requeued = _job(store, job_id)
    if requeued.status == "succeeded":
        pytest.skip("the run finished before the shutdown reached it")
    assert requeued.status == "queued" and requeued.worker_id is None
    step = int(requeued.resume_from.rsplit("step-", 1)[-1])
    assert f"Fine-tuning job re-queued to continue from step {step}" in _messages(store, job_id)
    assert Worker(settings, store).run_once() is True
    finished = _job(store, job_id)
    assert finished.status == "succeeded", finished.error
    assert _metric_steps(store, job_id)[-(TOTAL_STEPS - step):] == list(range(step + 1,
                                                                              TOTAL_STEPS + 1))


def test_twelve_jobs_on_three_worker_processes_each_run_exactly_once(settings, store, tmp_path,
                                                                     tiny_model_dir):
    from dataclasses import replace

    from strop.settings import EvaluationSettings
    from strop.worker.pool import WorkerPool

    jobs = [_queue_job(settings, store, tmp_path, tiny_model_dir, epochs=1, batch_size=4)
            for _ in range(12)]
    quick = replace(settings, evaluation=EvaluationSettings(after_training=False))
    pool = WorkerPool(quick, 3).start()
    try:
        def all_finished():
            assert all(process.poll() is None for process in pool.processes)
            with store.session() as session:
                statuses = session.scalars(select(Job.status).where(Job.id.in_(jobs))).all()
            return all(status in ("succeeded", "failed") for status in statuses)
        wait_for(all_finished, timeout=600, interval=0.5)
    finally:
        pool.stop()
    with store.session() as session:
        for job_id in jobs:
            job = session.scalar(select(Job).where(Job.id == job_id))
            assert job.status == "succeeded", job.error
            started = session.scalars(select(Event.id).where(
                Event.job_id == job_id, Event.message == "Fine-tuning job started")).all()
            attempts = session.scalars(select(JobAttempt).where(
                JobAttempt.job_id == job_id)).all()
            models = session.scalars(select(TunedModel.name).where(
                TunedModel.job_id == job_id, TunedModel.kind == "final")).all()
            assert len(started) == 1 and len(attempts) == 1 and len(models) == 1
            assert attempts[0].outcome == "succeeded" and job.trained_tokens > 0
            assert (settings.jobs_dir / job_id / "adapter").is_dir()
        workers = {row.worker_id for row in session.scalars(select(JobAttempt))}
    assert len(workers) >= 2  # the work was shared, not run by one process alone
