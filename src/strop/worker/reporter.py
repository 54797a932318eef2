"""The training callback of a job: turns progress into events, metrics, checkpoints, heartbeats."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

from sqlalchemy import select, update

from strop.store import Store, ids
from strop.store.db import UNREACHABLE, when_reachable
from strop.store import jobs as job_queries
from strop.store.tables import Job

METRIC_KEYS = ("step", "train_loss", "train_mean_token_accuracy", "valid_loss",
               "valid_mean_token_accuracy", "full_valid_loss", "full_valid_mean_token_accuracy")
CHECKPOINT_METRIC_KEYS = METRIC_KEYS
LEVELS = {"info": "info", "warning": "warn", "warn": "warn", "error": "error"}
STOP_POLL_SECONDS = 0.25


def _number(value):
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


class JobReporter:
    """Implements strop.train.TrainCallback for one job; called from the training thread.

    While the database is unreachable its writes wait and retry (the run pauses at its next
    event rather than failing), and stop requests are read again once it is back."""

    def __init__(self, store: Store, job_id: str, worker_id: str, organization_name: str,
                 shutting_down: threading.Event | None = None):
        self.store = store
        self.job_id = job_id
        self.worker_id = worker_id
        self.organization_name = organization_name
        self.started = time.monotonic()
        self.first_step: int | None = None
        self._stop_checked_at = 0.0
        self._stop: str | None = None
        self._lock = threading.Lock()
        self.shutting_down = shutting_down or threading.Event()

    def _write(self, write) -> None:
        def in_a_transaction():
            with self.store.session() as session:
                write(session)
        when_reachable(in_a_transaction, self.shutting_down)

    def on_event(self, level, message, data=None) -> None:
        def write(session):
            job_queries.add_event(session, self.job_id, message, level=LEVELS.get(level, "info"),
                                  data=data)
            if data and isinstance(data.get("hyperparameters"), dict):
                self._record_resolved(session, data["hyperparameters"])
        self._write(write)

    def _record_resolved(self, session, resolved: dict) -> None:
        """Replace "auto" in the job's hyperparameters with what training chose, as OpenAI does."""
        job = session.scalar(select(Job).where(Job.id == self.job_id))
        method = dict(job.method)
        spec = dict(method.get(method["type"]) or {})
        chosen = dict(spec.get("hyperparameters") or {})
        for key in chosen:
            if chosen[key] == "auto" and resolved.get(key) is not None:
                chosen[key] = resolved[key]
        spec["hyperparameters"] = chosen
        method[method["type"]] = spec
        job.method = method  # a new dict: JSON columns only notice reassignment

    def on_metrics(self, metrics: dict) -> None:
        step = int(metrics.get("step") or 0)
        total = metrics.get("total_steps")
        data = {key: (_number(metrics.get(key)) if key != "step" else step)
                for key in METRIC_KEYS if key in metrics}
        if total is not None:
            data["total_steps"] = int(total)
        message = f"Step {step}/{total or '?'}: training loss={_format(metrics.get('train_loss'))}"
        if metrics.get("valid_loss") is not None:
            message += f", validation loss={_format(metrics.get('valid_loss'))}"
        values: dict = {"heartbeat_at": time.time()}
        if metrics.get("trained_tokens") is not None:
            values["trained_tokens"] = int(metrics["trained_tokens"])
        if total and step:
            if self.first_step is None:
                self.first_step, self.started = step, time.monotonic()
            elif step > self.first_step:
                per_step = (time.monotonic() - self.started) / (step - self.first_step)
                values["estimated_finish"] = ids.now() + int(per_step * (int(total) - step)) + 1
        def write(session):
            job_queries.add_event(session, self.job_id, message, type="metrics", data=data)
            session.execute(update(Job).where(Job.id == self.job_id,
                                              Job.worker_id == self.worker_id).values(**values))
        self._write(write)

    def on_checkpoint(self, step: int, path: Path, metrics: dict) -> None:
        clean = {key: _number(metrics.get(key)) for key in CHECKPOINT_METRIC_KEYS if key != "step"}
        clean["step"] = float(step)
        def write(session):
            job = session.scalar(select(Job).where(Job.id == self.job_id))
            job_queries.add_checkpoint(session, job, self.organization_name, step, Path(path), clean)
            job_queries.forget_rotated_checkpoints(session, self.job_id)
            job_queries.add_event(session, self.job_id, f"Checkpoint created at step {step}",
                                  data={"step": step})
        self._write(write)

    def should_stop(self):
        if self.shutting_down.is_set():
            # Checkpoint and stop; the worker re-queues the job for whoever runs next.
            return "pause"
        now = time.monotonic()
        with self._lock:
            if now - self._stop_checked_at >= STOP_POLL_SECONDS:
                self._stop_checked_at = now
                try:
                    with self.store.read() as session:
                        request, holder = session.execute(
                            select(Job.stop_request, Job.worker_id)
                            .where(Job.id == self.job_id)).one()
                except UNREACHABLE:
                    return self._stop  # asked again once the database is back
                # A job taken from this worker (recovered elsewhere) must stop, and not as a
                # success: "cancel" ends the run without registering anything.
                self._stop = request if holder == self.worker_id else "cancel"
            return self._stop


def _format(value) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number:.4f}"
