"""/v1/fine_tuning/jobs: create, list, retrieve, cancel, pause, resume, events, checkpoints."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from strop.server.auth import Caller, caller
from strop.server.routing import JSONRoute
from strop.server.errors import APIError
from strop.server.objects import checkpoint_object, cursor_page, event_object, job_object
from strop.server.schemas import JobCreate
from strop.store import CursorNotFound
from strop.store import jobs as job_queries
from strop.store.job_states import JobStateError
from strop.store.files import file_row

# The job routes are async and do their database work on the event loop: each is a few short
# SQLite statements (well under a millisecond), and running them one after another on one
# thread avoids what a thread per request costs under load: a hop through the thread pool and
# threads queueing for the interpreter lock while one of them holds the database's write lock.
# So does the audit append, where fsync is quick (see `AuditLog.append_async`).
router = APIRouter(route_class=JSONRoute)


async def _audit(request: Request, action: str, who: Caller, **fields) -> None:
    await request.app.state.audit.append_async(action, actor=who.actor,
                                               organization=who.organization_name, **fields)


def _base_model(store, who: Caller, name: str) -> str:
    """The root base model a job trains on; 400 when `name` is neither a base nor an ft: model."""
    if name.startswith("ft:"):
        with store.read() as session:
            parent = job_queries.tuned_model(session, name, who.organization_id)
        if parent is None:
            raise APIError(400, f"Model {name} is not available for fine-tuning or does not "
                                "exist.", param="model", code="model_not_available")
        return parent.base_model
    from strop.models import ModelError, resolve

    try:
        resolve(name)
    except ModelError as exc:
        raise APIError(400, str(exc), param="model", code="model_not_available") from None
    return name


def _check_file(session, who: Caller, file_id: str | None, param: str) -> None:
    if file_id is None:
        return
    row = file_row(session, file_id, who.organization_id)
    if row is None:
        raise APIError(400, f"Invalid file ID '{file_id}': no such file.", param=param,
                       code="invalid_file")
    if row.purpose != "fine-tune":
        raise APIError(400, f"File {file_id} has purpose '{row.purpose}'; fine-tuning needs "
                            "purpose 'fine-tune'.", param=param, code="invalid_file_purpose")


@router.post("/fine_tuning/jobs")
async def create_job(body: JobCreate, request: Request, who: Caller = Depends(caller)):
    store = request.app.state.store
    base_model = _base_model(store, who, body.model)
    with store.transaction() as connection:
        _check_file(connection, who, body.training_file, "training_file")
        _check_file(connection, who, body.validation_file, "validation_file")
        job = job_queries.create_job(
            connection, organization_id=who.organization_id, model=body.model,
            base_model=base_model, training_file=body.training_file,
            validation_file=body.validation_file, method=body.normalized_method(),
            seed=body.seed if body.seed is not None else secrets.randbelow(2**31),
            suffix=body.suffix or None, metadata=body.metadata)
        reply = job_object(job)
    files = {"training_file": job.training_file}
    if job.validation_file:
        files["validation_file"] = job.validation_file
    await _audit(request, "job.created", who, objects={"job": job.id, **files},
                 details={"model": job.model, "method": job.method, "seed": job.seed,
                          "suffix": job.suffix})
    return reply


@router.get("/fine_tuning/jobs")
async def list_jobs(request: Request, who: Caller = Depends(caller), after: str | None = None,
                    limit: int = Query(20, ge=1, le=100)):
    # The client sends a metadata filter as metadata[key]=value query parameters.
    metadata = {key[len("metadata["):-1]: value for key, value in request.query_params.items()
                if key.startswith("metadata[") and key.endswith("]")}
    with request.app.state.store.rows() as connection:
        try:
            result = job_queries.list_jobs(connection, who.organization_id, after=after,
                                           limit=limit, metadata=metadata or None)
        except CursorNotFound as exc:
            raise APIError(400, str(exc), param="after") from None
        return cursor_page([job_object(job) for job in result.data], result.has_more)


def _job(session, who: Caller, job_id: str, lookup=job_queries.job_row):
    """The caller's job (a read-only row, or a Job object with `lookup=get_job`); 404 when
    there is none."""
    job = lookup(session, job_id, who.organization_id)
    if job is None:
        raise APIError(404, f"Could not find fine-tuning job: {job_id}", param="fine_tuning_job_id",
                       code="fine_tuning_job_not_found")
    return job


@router.get("/fine_tuning/jobs/{job_id}")
async def retrieve_job(job_id: str, request: Request, who: Caller = Depends(caller)):
    with request.app.state.store.rows() as connection:
        return job_object(_job(connection, who, job_id))


async def _change(request: Request, who: Caller, job_id: str, change, action: str):
    with request.app.state.store.session() as session:
        job = _job(session, who, job_id, job_queries.get_job)
        try:
            change(session, job)
        except JobStateError as exc:
            raise APIError(400, str(exc), param="fine_tuning_job_id",
                           code="invalid_job_state") from None
        reply = job_object(job)
    await _audit(request, action, who, objects={"job": job_id}, details={"status": reply["status"]})
    return reply


@router.post("/fine_tuning/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, request: Request, who: Caller = Depends(caller)):
    return await _change(request, who, job_id, job_queries.cancel, "job.cancelled")


@router.post("/fine_tuning/jobs/{job_id}/pause")
async def pause_job(job_id: str, request: Request, who: Caller = Depends(caller)):
    return await _change(request, who, job_id, job_queries.pause, "job.paused")


@router.post("/fine_tuning/jobs/{job_id}/resume")
async def resume_job(job_id: str, request: Request, who: Caller = Depends(caller)):
    return await _change(request, who, job_id, job_queries.resume, "job.resumed")


def _job_page(request: Request, who: Caller, job_id: str, query, to_object, after, limit):
    """One cursor page of a job's events or checkpoints, after checking the caller owns it."""
    with request.app.state.store.read() as session:
        _job(session, who, job_id)
        try:
            result = query(session, job_id, after=after, limit=limit)
        except CursorNotFound as exc:
            raise APIError(400, str(exc), param="after") from None
        return cursor_page([to_object(row) for row in result.data], result.has_more)


@router.get("/fine_tuning/jobs/{job_id}/events")
async def list_events(job_id: str, request: Request, who: Caller = Depends(caller),
                      after: str | None = None, limit: int = Query(20, ge=1, le=1000)):
    return _job_page(request, who, job_id, job_queries.list_events, event_object, after, limit)


@router.get("/fine_tuning/jobs/{job_id}/checkpoints")
async def list_checkpoints(job_id: str, request: Request, who: Caller = Depends(caller),
                           after: str | None = None, limit: int = Query(10, ge=1, le=100)):
    return _job_page(request, who, job_id, job_queries.list_checkpoints, checkpoint_object,
                     after, limit)


@router.get("/fine_tuning/jobs/{job_id}/evaluation")
async def job_evaluation(job_id: str, request: Request, who: Caller = Depends(caller)):
    """strop's own route: the base-vs-tuned evaluation run after the job succeeded.

    status is `pending` until the job succeeds and its evaluation starts, then `running`,
    `succeeded` (with `result`), `failed` (with `error`), or `disabled` by the server's settings.
    """
    with request.app.state.store.read() as session:
        job = _job(session, who, job_id)
        state = dict(job.evaluation or {})
        job_status = job.status
    if not state:
        enabled = request.app.state.settings.evaluation.after_training
        state = {"status": "pending" if enabled and job_status not in ("failed", "cancelled")
                 else "disabled" if not enabled else "not_available"}
    result = None
    if state.get("status") == "succeeded":
        result = json.loads(Path(state["path"]).read_text())
    return {"object": "fine_tuning.job.evaluation", "job_id": job_id, "job_status": job_status,
            "status": state["status"], "error": state.get("error"), "result": result}
