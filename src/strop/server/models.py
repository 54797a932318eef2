"""/v1/models (list, retrieve, delete) and the strop route that hands out a model's weights."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from strop.server.auth import Caller, caller
from strop.server.routing import JSONRoute
from strop.server.errors import APIError
from strop.server.objects import model_object, tuned_model_object
from strop.store import ids
from strop.store import jobs as job_queries
from strop.store.export import export_merged, stream_tar_gz
from strop.store.tables import TunedModel

router = APIRouter(route_class=JSONRoute)


def _not_found(name: str) -> APIError:
    return APIError(404, f"The model '{name}' does not exist or you do not have access to it.",
                    param="model", code="model_not_found")


def _base_models() -> list[dict]:
    from strop.models import available

    return [model_object(name, 0, "strop") for name in available()]


@router.get("/models")
async def list_models(request: Request, who: Caller = Depends(caller)):
    with request.app.state.store.read() as session:
        tuned = [tuned_model_object(row, who.organization_name)
                 for row in job_queries.tuned_models(session, who.organization_id)]
    return {"object": "list", "data": _base_models() + tuned}


@router.get("/models/{model:path}")
async def retrieve_model(model: str, request: Request, who: Caller = Depends(caller)):
    if model.startswith("ft:"):
        with request.app.state.store.read() as session:
            row = job_queries.tuned_model(session, model, who.organization_id)
            if row is None:
                raise _not_found(model)
            return tuned_model_object(row, who.organization_name)
    from strop.models import ModelError, resolve

    try:
        resolve(model)
    except ModelError:
        raise _not_found(model) from None
    return model_object(model, 0, "strop")


@router.delete("/models/{model:path}")
async def delete_model(model: str, request: Request, who: Caller = Depends(caller)):
    if not model.startswith("ft:"):
        raise APIError(403, f"Base model '{model}' cannot be deleted; only fine-tuned (ft:) "
                            "models can.", param="model", code="model_not_deletable",
                       type="invalid_request_error")
    with request.app.state.store.session() as session:
        row: TunedModel | None = job_queries.tuned_model(session, model, who.organization_id)
        if row is None:
            raise _not_found(model)
        row.deleted_at = ids.now()
        job_id, path = row.job_id, row.path
    engine = getattr(request.app.state, "engine", None)  # created on the first chat request
    if engine is not None:  # in a thread: the engine's lock is held while it generates
        await run_in_threadpool(engine.unload, model)
    await request.app.state.audit.append_async(
        "model.deleted", actor=who.actor, organization=who.organization_name,
        objects={"model": model, "job": job_id}, details={"path": path})
    return {"id": model, "object": "model", "deleted": True}


@router.get("/strop/archive/{model:path}")
async def model_archive(model: str, request: Request, merged: bool = False,
                  who: Caller = Depends(caller)):
    """A tuned model's adapter (or, with ?merged=true, merged weights) as a .tar.gz stream."""
    with request.app.state.store.read() as session:
        row = job_queries.tuned_model(session, model, who.organization_id)
        if row is None:
            raise _not_found(model)
        base, folder = row.base_model, Path(row.path)
    if not folder.is_dir():
        raise APIError(500, f"The weights of '{model}' are missing from {folder}.",
                       code="model_files_missing")
    root = re.sub(r"[^A-Za-z0-9._-]", "_", model)
    scratch = None
    if merged:
        scratch = Path(tempfile.mkdtemp(prefix="strop-merge-"))
        folder = await run_in_threadpool(export_merged, base, folder, scratch / "model")
        root += "-merged"
    await request.app.state.audit.append_async(
        "model.exported", actor=who.actor, organization=who.organization_name,
        objects={"model": model}, details={"merged": merged, "via": "api"})

    def body():
        try:
            yield from stream_tar_gz(folder, root)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)

    return StreamingResponse(body(), media_type="application/gzip", headers={
        "Content-Disposition": f'attachment; filename="{root}.tar.gz"'})
