"""The worker: claims jobs, validates their files, runs training, records the outcome.

One job at a time per worker. Training runs in its own thread so the worker can keep the
job's heartbeat fresh; a job whose heartbeat goes stale (or whose worker process is gone) is
recovered by the next worker that looks: resumed from its last checkpoint, or failed with a
reason once it has been attempted `max_job_attempts` times.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path

from sqlalchemy import select, update

from strop.audit import AuditLog
from strop.settings import Settings
from strop.store import Store, ids
from strop.store.db import UNREACHABLE, when_reachable
from strop.store import jobs as job_queries
from strop.store.files import add_file, blob_path, receive_blob
from strop.store.job_states import FINISHED, move
from strop.store.tables import (Job, JobAttempt, Organization, StoredFile, TunedModel,
                                WorkerSeen)
from strop.store.validation import check_training_file, file_error, report_summary
from strop.worker.reporter import JobReporter

log = logging.getLogger("strop.worker")


class JobFailure(Exception):
    """Ends a job as failed with OpenAI's error object."""

    def __init__(self, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.error = {"code": code, "message": message, "param": param}


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{ids.random_token(6)}"


def _holder_is_dead(worker_id: str) -> bool:
    """True when the worker named in a job is a process on this host that no longer exists."""
    host, _, rest = worker_id.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Worker:
    def __init__(self, settings: Settings, store: Store, worker_id: str | None = None):
        self.settings = settings
        self.audit_log = settings.audit_log
        self.store = store
        self.worker_id = worker_id or new_worker_id()
        self.stopping = threading.Event()
        self._started_at, self._seen_at = ids.now(), 0.0

    # -- the loop -------------------------------------------------------------------------

    def run_forever(self) -> None:
        log.info("worker %s started", self.worker_id)
        while not self.stopping.is_set():
            try:
                self.seen()
                self.recover_stale()
                worked = self.run_once()
            except Exception:  # a broken database connection must not kill the loop
                log.exception("worker loop error; retrying")
                worked = False
            if not worked:
                self.stopping.wait(self.settings.worker.poll_seconds)

    def stop(self) -> None:
        self.stopping.set()

    def seen(self) -> None:
        """Say this worker is alive and looking for work (`/ready` wants one seen lately)."""
        now = time.time()
        if now - self._seen_at < self.settings.worker.heartbeat_seconds:
            return
        with self.store.session() as session:
            session.merge(WorkerSeen(worker_id=self.worker_id, host=socket.gethostname(),
                                     pid=os.getpid(), started_at=self._started_at, seen_at=now))
        self._seen_at = now

    def run_once(self) -> bool:
        """Claim one job and run it to its end; False when nothing was waiting."""
        with self.store.session() as session:
            job = job_queries.claim_next(session, self.worker_id)
            job_id = job.id if job else None
        if job_id is None:
            return False
        self._run(job_id)
        return True

    # -- recovery -------------------------------------------------------------------------

    def recover_stale(self) -> list[str]:
        """Release jobs whose worker died; returns the ids recovered. Called between jobs, so a
        job this worker still holds was orphaned too (the database went away mid-job)."""
        deadline = time.time() - self.settings.worker.stale_after_seconds
        recovered = []
        with self.store.session() as session:
            for job in session.scalars(select(Job).where(Job.worker_id.is_not(None))):
                if not (job.worker_id == self.worker_id or _holder_is_dead(job.worker_id)
                        or (job.heartbeat_at or 0) < deadline):
                    continue
                self._recover(session, job)
                recovered.append(job.id)
        return recovered

    def _recover(self, session, job: Job) -> None:
        lost = job.worker_id
        _end_attempt(session, job.id, lost, "lost")
        job.worker_id, job.heartbeat_at, job.stop_request = None, None, None
        if job.status in FINISHED:
            return
        checkpoint = job_queries.latest_checkpoint(session, job.id)
        job.attempts = (job.attempts or 0) + 1  # counts crashes, not pauses
        if job.attempts > self.settings.worker.max_attempts:
            self._fail(session, job, {
                "code": "worker_lost",
                "message": f"The worker running this job stopped unexpectedly {job.attempts} "
                           "times; the job was failed rather than retried again.",
                "param": None})
            return
        if job.status == "running":
            move(job, "requeue")
        if checkpoint is not None:
            job.resume_from = checkpoint.path
            where = f"resuming from the checkpoint at step {checkpoint.step_number}"
        else:
            job.resume_from = None
            where = "restarting from the beginning (no checkpoint had been written)"
        job_queries.add_event(session, job.id,
                              f"The worker running this job stopped unexpectedly; {where}",
                              level="warn", data={"lost_worker": lost})
        _audit(self.audit_log, "job.recovered", session, job, details={"lost_worker": lost,
                                                      "resume_from": job.resume_from})

    # -- one job --------------------------------------------------------------------------

    def _run(self, job_id: str) -> None:
        try:
            if not self._validate(job_id):
                return
            result = self._train(job_id)
        except JobFailure as failure:
            when_reachable(lambda: self._finish_failed(job_id, failure.error), self.stopping)
            return
        except UNREACHABLE:
            raise  # not the job's fault: it is taken up again once the database is back
        except Exception as exc:
            log.exception("job %s failed", job_id)
            self._finish_failed(job_id, {
                "code": "server_error",
                "message": f"Training stopped with an internal error: {type(exc).__name__}: {exc}",
                "param": None})
            return
        if result is not None:
            when_reachable(lambda: self._finish(job_id, result), self.stopping)
            if result.status == "succeeded":
                self._evaluate(job_id, Path(result.output_dir).parent)

    def _mine(self, session, job_id: str) -> Job | None:
        """The job, re-read, if this worker still holds it."""
        job = session.scalar(select(Job).where(Job.id == job_id)
                             .execution_options(populate_existing=True))
        return job if job is not None and job.worker_id == self.worker_id else None

    def _validate(self, job_id: str) -> bool:
        """Check the files of a job in validating_files; True when it may go on to train."""
        with self.store.session() as session:
            job = self._mine(session, job_id)
            if job is None or job.status in ("cancelled", "paused"):
                self._release(session, job)
                return False
            if job.status != "validating_files":
                return True
            files = [("training_file", job.training_file)]
            if job.validation_file:
                files.append(("validation_file", job.validation_file))
            job_queries.add_event(session, job.id, f"Validating training file: {job.training_file}")
            if job.validation_file:
                job_queries.add_event(session, job.id,
                                      f"Validating validation file: {job.validation_file}")
            rows = {param: self._file_row(session, job, param, file_id) for param, file_id in files}
        for param, row in rows.items():
            report = check_training_file(blob_path(self.settings.files_dir, row.sha256))
            with self.store.session() as session:
                stored = session.get(StoredFile, row.seq)
                if stored is not None:
                    stored.validation = report_summary(report)
                _audit_file_validation(self.audit_log, session, job_id, row, report)
            error = file_error(report, param)
            if error is not None:
                if param == "validation_file":
                    error["message"] = f"Validation file {row.id}: {error['message']}"
                raise JobFailure(**error)
        with self.store.session() as session:
            job = self._mine(session, job_id)
            if job is None or job.status != "validating_files":
                self._release(session, job)
                return False
            move(job, "files_validated")
            job_queries.add_event(session, job.id, "Files validated, moving job to queued state")
        return True

    def _file_row(self, session, job: Job, param: str, file_id: str) -> StoredFile:
        row = session.scalar(select(StoredFile).where(
            StoredFile.id == file_id, StoredFile.organization_id == job.organization_id))
        if row is None or not blob_path(self.settings.files_dir, row.sha256).is_file():
            raise JobFailure("invalid_file", f"File {file_id} ({param}) no longer exists.", param)
        return row

    def _train(self, job_id: str):
        from strop.train import TrainConfig, TrainingError, run_training

        with self.store.session() as session:
            job = self._mine(session, job_id)
            if job is None or job.status != "queued":
                self._release(session, job)
                return None
            organization = session.get(Organization, job.organization_id)
            output_dir = self.settings.jobs_dir / job.id
            data_dir = output_dir / "data"
            data_dir.mkdir(parents=True, exist_ok=True)
            training_path = self._materialize(session, job, "training_file", job.training_file,
                                              data_dir)
            validation_path = (self._materialize(session, job, "validation_file",
                                                 job.validation_file, data_dir)
                               if job.validation_file else None)
            model = self._trainable_model(session, job)
            method = job.method or {"type": "supervised"}
            hyperparameters = (method.get(method["type"]) or {}).get("hyperparameters") or {}
            resume_from = Path(job.resume_from) if job.resume_from else None
            if resume_from is not None and not resume_from.is_dir():
                resume_from = None
            config = TrainConfig(method=method["type"], model=model,
                                 training_file=training_path, validation_file=validation_path,
                                 output_dir=output_dir, hyperparameters=hyperparameters,
                                 seed=job.seed, resume_from=resume_from)
            first_start = job.started_at is None
            move(job, "start")
            job.started_at = job.started_at or ids.now()
            job.heartbeat_at = time.time()
            worker = self._begin_attempt(session, job)
            job_queries.add_event(
                session, job.id, "Fine-tuning job started" if first_start and resume_from is None
                else f"Fine-tuning job resumed from {resume_from.name if resume_from else 'the start'}",
                data={"worker": worker})
            _audit(self.audit_log, "job.started", session, job, details={"resume_from": job.resume_from,
                                                         "attempt": job.attempts})
            reporter = JobReporter(self.store, job.id, self.worker_id, organization.name,
                                   shutting_down=self.stopping)

        outcome: dict = {}

        def train() -> None:
            try:
                outcome["result"] = run_training(config, reporter)
            except BaseException as exc:  # handed to the worker thread, which decides
                outcome["error"] = exc

        thread = threading.Thread(target=train, name=f"train-{job_id}", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(self.settings.worker.heartbeat_seconds)
            try:
                with self.store.session() as session:
                    session.execute(update(Job).where(Job.id == job_id,
                                                      Job.worker_id == self.worker_id)
                                    .values(heartbeat_at=time.time()))
            except UNREACHABLE:
                log.warning("job %s: heartbeat not recorded, the database is unreachable", job_id)
        if "error" in outcome:
            error = outcome["error"]
            if isinstance(error, TrainingError):
                raise JobFailure(error.code, error.message, error.param)
            raise error
        return outcome["result"]

    def _materialize(self, session, job, param, file_id, data_dir: Path) -> Path:
        """Give training a named copy of the upload (hard link when possible)."""
        row = self._file_row(session, job, param, file_id)
        target = data_dir / f"{param}.jsonl"
        if not target.exists():
            source = blob_path(self.settings.files_dir, row.sha256)
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        return target

    def _trainable_model(self, session, job: Job) -> str:
        if not job.model.startswith("ft:"):
            return job.model
        parent = job_queries.tuned_model(session, job.model, job.organization_id)
        if parent is None or not Path(parent.path).is_dir():
            raise JobFailure("model_not_found",
                             f"The model '{job.model}' no longer exists; it cannot be trained on.",
                             "model")
        return parent.path

    # -- outcomes -------------------------------------------------------------------------

    def _finish(self, job_id: str, result) -> None:
        with self.store.session() as session:
            job = self._mine(session, job_id)
            if job is None:
                return
            if result.status == "paused":
                self._finish_paused(session, job)
                return
            if result.status == "cancelled" or job.status == "cancelled":
                if job.status != "cancelled":
                    move(job, "cancel")
                job.finished_at = job.finished_at or ids.now()
                # The API recorded the cancellation when it was asked for; nothing new here.
                self._release(session, job)
                return
            self._finish_succeeded(session, job, result)

    def _finish_paused(self, session, job: Job) -> None:
        """The run stopped at a checkpoint: because the user paused it, or because this worker
        is shutting down (or the user resumed while it was stopping): then it queues again."""
        checkpoint = job_queries.latest_checkpoint(session, job.id)
        job.resume_from = checkpoint.path if checkpoint else None
        where = f"step {checkpoint.step_number}" if checkpoint else "the start"
        if job.status == "paused":
            job_queries.add_event(session, job.id, f"Fine-tuning job paused at {where}")
        else:
            move(job, "requeue")
            job_queries.add_event(session, job.id, f"Fine-tuning job re-queued to continue from "
                                                   f"{where}")
            _audit(self.audit_log, "job.requeued", session, job, details={"resume_from": job.resume_from})
        self._release(session, job)

    def _finish_succeeded(self, session, job: Job, result) -> None:
        organization = session.get(Organization, job.organization_id)
        name = job_queries.fine_tuned_name(job, organization.name)
        now = ids.now()
        with open(result.metrics_csv, "rb") as source:
            blob = receive_blob(self.settings.files_dir, source, limit=2**62)
        results = add_file(session, self.settings.files_dir, blob,
                           organization_id=job.organization_id, filename="step_metrics.csv",
                           purpose="fine-tune-results", status="processed")
        sha = blob.sha256
        root_base = job.base_model
        session.add(TunedModel(name=name, organization_id=job.organization_id, job_id=job.id,
                               base_model=root_base, kind="final", step=result.steps,
                               path=str(result.output_dir), created_at=now))
        for checkpoint in job_queries.list_checkpoints(session, job.id, after=None,
                                                       limit=10_000).data:
            if not Path(checkpoint.path).is_dir():  # training keeps only the newest few
                session.delete(checkpoint)
                continue
            session.add(TunedModel(name=checkpoint.fine_tuned_model_checkpoint,
                                   organization_id=job.organization_id, job_id=job.id,
                                   base_model=root_base, kind="checkpoint",
                                   step=checkpoint.step_number, path=checkpoint.path,
                                   created_at=checkpoint.created_at))
        move(job, "succeed")
        job.fine_tuned_model = name
        job.result_files = [results.id]
        job.trained_tokens = result.trained_tokens
        job.finished_at, job.estimated_finish = now, None
        job_queries.add_event(session, job.id, f"New fine-tuned model created: {name}",
                              data={"fine_tuned_model": name})
        job_queries.add_event(session, job.id, "The job has successfully completed")
        _audit(self.audit_log, "job.succeeded", session, job,
               objects={"model": name, "result_file": results.id},
               hashes={"result_file": f"sha256:{sha}"},
               details={"steps": result.steps, "trained_tokens": result.trained_tokens,
                        "output_dir": str(result.output_dir)})
        self._release(session, job)

    def _evaluate(self, job_id: str, job_dir: Path) -> None:
        """Base vs tuned on held-out data, retention and hallucination, stored with the job.

        Runs after the job is marked succeeded (the model is usable at once), so a failure
        here is recorded on the evaluation, never on the job."""
        if not self.settings.evaluation.after_training:
            return
        from strop.evaluate.tuned import evaluate_tuned_model

        with self.store.session() as session:
            job = job_queries.get_job(session, job_id)
            job.evaluation = {"status": "running"}
            model_name = job.fine_tuned_model
            job_queries.add_event(session, job_id, "Evaluating the fine-tuned model against its "
                                                   "base on held-out data")
        try:
            result, paths = evaluate_tuned_model(
                self.settings, str(job_dir), limit=self.settings.evaluation.limit,
                max_new_tokens=self.settings.evaluation.max_new_tokens, name=model_name)
        except Exception as exc:  # the job stands; the evaluation says why it is missing
            log.exception("evaluation of job %s failed", job_id)
            with self.store.session() as session:
                job = job_queries.get_job(session, job_id)
                job.evaluation = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                job_queries.add_event(session, job_id, f"Evaluation failed: {exc}", level="warn")
            return
        evaluation_path = paths.evaluation_path
        with self.store.session() as session:
            job = job_queries.get_job(session, job_id)
            job.evaluation = {"status": "succeeded", "path": str(evaluation_path)}
            drops = result.significant_drops
            summary = ("no significant drop" if not drops else "significant drop in "
                       + ", ".join(f"{c.group}/{c.metric}" for c in drops))
            job_queries.add_event(session, job_id, f"Evaluation finished: {summary}",
                                  level="warn" if drops else "info",
                                  data={"significant_drops": [f"{c.group}/{c.metric}"
                                                              for c in drops]})
            _audit(self.audit_log, "evaluation.completed", session, job,
                   objects={"model": job.fine_tuned_model},
                   hashes={"evaluation": "sha256:" + _sha256_file(evaluation_path)},
                   details={"significant_drops": [f"{c.group}/{c.metric}" for c in drops],
                            "limit": self.settings.evaluation.limit})

    def _finish_failed(self, job_id: str, error: dict) -> None:
        with self.store.session() as session:
            job = self._mine(session, job_id)
            if job is None:
                return
            if job.status == "cancelled":  # a cancel raced the failure; the user's word stands
                self._release(session, job)
                return
            self._fail(session, job, error)
            self._release(session, job)

    def _fail(self, session, job: Job, error: dict) -> None:
        move(job, "fail")
        job.error = error
        job.finished_at, job.estimated_finish = ids.now(), None
        job_queries.add_event(session, job.id, error["message"], level="error",
                              data={"code": error["code"], "param": error.get("param")})
        job_queries.add_event(session, job.id, "The job failed", level="error")
        _audit(self.audit_log, "job.failed", session, job, details={"error": error})

    def _begin_attempt(self, session, job: Job) -> dict:
        """Record that this worker runs the job now; returns who that is, for the event."""
        host, pid = socket.gethostname(), os.getpid()
        number = 1 + len(session.scalars(select(JobAttempt.seq)
                                         .where(JobAttempt.job_id == job.id)).all())
        session.add(JobAttempt(job_id=job.id, number=number, worker_id=self.worker_id,
                               host=host, pid=pid, started_at=ids.now()))
        return {"id": self.worker_id, "host": host, "pid": pid, "attempt": number}

    def _release(self, session, job: Job | None) -> None:
        if job is not None and job.worker_id == self.worker_id:
            _end_attempt(session, job.id, self.worker_id,
                         "requeued" if job.status == "queued" else job.status)
            job.worker_id, job.heartbeat_at, job.stop_request = None, None, None


def _end_attempt(session, job_id: str, worker_id: str, outcome: str) -> None:
    session.execute(update(JobAttempt).where(
        JobAttempt.job_id == job_id, JobAttempt.worker_id == worker_id,
        JobAttempt.ended_at.is_(None)).values(ended_at=ids.now(), outcome=outcome))


def _sha256_file(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _audit(log: AuditLog, action: str, session, job: Job, objects: dict | None = None,
           hashes: dict | None = None, details: dict | None = None) -> None:
    organization = session.get(Organization, job.organization_id)
    log.append(action, actor="worker", organization=organization.name if organization else None,
               objects={"job": job.id, "training_file": job.training_file, **(objects or {})},
               hashes=hashes, details=details)


def _audit_file_validation(log: AuditLog, session, job_id: str, row: StoredFile,
                           report) -> None:
    organization = session.get(Organization, row.organization_id)
    log.append("file.validated", actor="worker",
               organization=organization.name if organization else None,
               objects={"job": job_id, "file": row.id}, hashes={"file": f"sha256:{row.sha256}"},
               details={"ok": report.ok, "format": report.format,
                        "n_examples": report.n_examples, "errors": len(report.errors)})
