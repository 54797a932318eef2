"""The job state machine: `move` is the only way a job's status changes.

Each transition names the statuses it may start from, so a state change that races another
(a cancel arriving while the worker finishes, a resume while the run is still stopping) is
refused here, in one place, instead of being decided by each caller.
"""

from __future__ import annotations

from typing import NamedTuple

from strop.store.tables import Job

ACTIVE = ("validating_files", "queued", "running")
FINISHED = ("succeeded", "failed", "cancelled")
STATUSES = (*ACTIVE, "paused", *FINISHED)


class JobStateError(ValueError):
    """A state change the job's current status does not allow (an HTTP 400, never a 409)."""


class Transition(NamedTuple):
    sources: tuple[str, ...]
    target: str
    refusal: str  # formatted with the job's id and status


TRANSITIONS = {
    "files_validated": Transition(("validating_files",), "queued",
                                  "Job {id} is {status}; only a job validating its files can "
                                  "be queued."),
    "start": Transition(("queued",), "running", "Job {id} is {status}; only a queued job can "
                                                "start."),
    # stopped at a checkpoint by a shutting-down worker, or its worker was lost
    "requeue": Transition(("running",), "queued", "Job {id} is {status}; only a running job "
                                                  "can be re-queued."),
    "pause": Transition(("running",), "paused", "Job {id} is {status}; only a running job can "
                                                "be paused."),
    "resume": Transition(("paused",), "queued", "Job {id} is {status}; only a paused job can "
                                                "be resumed."),
    # resumed before its run had stopped: the run simply carries on
    "resume_running": Transition(("paused",), "running", "Job {id} is {status}; only a paused "
                                                         "job can be resumed."),
    # a pause asked for as the run finished does not undo its result
    "succeed": Transition(("running", "paused"), "succeeded", "Job {id} is {status}; only a "
                                                              "running job can succeed."),
    "fail": Transition((*ACTIVE, "paused"), "failed", "Job {id} has already {status} and "
                                                      "cannot fail."),
    "cancel": Transition((*ACTIVE, "paused"), "cancelled", "Job {id} has already {status} and "
                                                           "cannot be cancelled."),
}


def move(job: Job, transition: str) -> Job:
    """Apply `transition` to `job`, or raise JobStateError saying why it cannot happen now."""
    allowed = TRANSITIONS[transition]
    if job.status not in allowed.sources:
        raise JobStateError(allowed.refusal.format(id=job.id, status=job.status))
    job.status = allowed.target
    return job
