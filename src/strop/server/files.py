"""/v1/files: upload, list, retrieve, delete, content."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi.responses import FileResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from strop import audit
from strop.server.auth import Caller, caller
from strop.server.routing import JSONRoute
from strop.server.errors import APIError, not_found
from strop.server.objects import cursor_page, file_object
from strop.store import CursorNotFound
from strop.store.files import (UploadTooLarge, add_file, blob_path, delete_file, file_row, get_file,
                               receive_blob, remove_partial_uploads)
from strop.store.paging import page
from strop.store.tables import Organization, StoredFile
from strop.store.validation import check_training_file, file_error, report_summary

router = APIRouter(route_class=JSONRoute)
log = logging.getLogger("strop.server")
UPLOAD_PURPOSES = ("fine-tune",)


@router.post("/files")
async def upload(request: Request, background: BackgroundTasks, who: Caller = Depends(caller)):
    settings = request.app.state.settings  # the body's size is bounded by server.limits
    try:
        form = await request.form(max_files=1, max_fields=8)
    except Exception as exc:  # malformed multipart: starlette raises several kinds
        raise APIError(400, f"Could not read the multipart upload: {exc}", param="file") from None
    try:
        upload = form.get("file")
        purpose = form.get("purpose")
        if not isinstance(upload, UploadFile):
            raise APIError(400, "Missing file: send it as the multipart field 'file'.",
                           param="file", code="missing_required_parameter")
        if purpose not in UPLOAD_PURPOSES:
            raise APIError(400, f"Invalid purpose {purpose!r}: strop accepts "
                                f"{', '.join(UPLOAD_PURPOSES)}.", param="purpose",
                           code="invalid_value")
        try:
            blob = await run_in_threadpool(receive_blob, settings.files_dir, upload.file,
                                           settings.server.max_upload_bytes)
        except UploadTooLarge as exc:
            raise APIError(413, str(exc), param="file", code="file_too_large") from None
        if blob.size == 0:
            blob.discard()
            raise APIError(400, "The uploaded file is empty.", param="file", code="invalid_value")
        filename = (upload.filename or "upload.jsonl").rsplit("/", 1)[-1][:512]
    finally:
        await form.close()
    try:
        with request.app.state.store.session() as session:
            row = add_file(session, settings.files_dir, blob, organization_id=who.organization_id,
                           filename=filename, purpose=purpose)
            body = file_object(row)
    finally:
        blob.discard()  # a no-op once the bytes are in place
    await request.app.state.audit.append_async(
        "file.uploaded", actor=who.actor, organization=who.organization_name,
        objects={"file": row.id}, hashes={"file": f"sha256:{blob.sha256}"},
        details={"filename": filename, "bytes": blob.size, "purpose": purpose})
    background.add_task(process_upload, request.app.state, row.id, who.actor,
                        who.organization_name)
    return body


def process_upload(state, file_id: str, actor: str, organization: str | None) -> None:
    """Validate an upload with the data toolkit and record the verdict on the file."""
    store, settings = state.store, state.settings
    with store.session() as session:
        row = session.scalar(select(StoredFile).where(StoredFile.id == file_id))
        if row is None:  # deleted before it was processed
            return
        path = blob_path(settings.files_dir, row.sha256)
    try:
        report = check_training_file(path)
        summary, error = report_summary(report), file_error(report, "upload")
    except Exception as exc:  # a crash in validation must still leave the file in a final state
        summary, error = None, {"code": "invalid_training_file",
                                "message": f"The file could not be checked: {exc}"}
    with store.session() as session:
        row = session.scalar(select(StoredFile).where(StoredFile.id == file_id))
        if row is None:
            return
        row.validation = summary
        row.status = "error" if error else "processed"
        row.status_details = error["message"] if error else None
    state.audit.append("file.validated", actor=actor, organization=organization,
                       objects={"file": file_id}, hashes={"file": f"sha256:{row.sha256}"},
                       details={"ok": error is None, "error": error,
                                "format": (summary or {}).get("format"),
                                "n_examples": (summary or {}).get("n_examples")})


def finish_interrupted_uploads(state) -> list[str]:
    """After a crash: check again every file whose check never finished (it would stay
    `uploaded` forever), and remove partial uploads nobody is writing any more."""
    remove_partial_uploads(state.settings.files_dir)
    with state.store.read() as session:
        waiting = session.execute(
            select(StoredFile.id, Organization.name)
            .outerjoin(Organization, Organization.id == StoredFile.organization_id)
            .where(StoredFile.status == "uploaded").order_by(StoredFile.seq)).all()
    for file_id, organization in waiting:
        log.warning("file %s was never checked (interrupted); checking it now", file_id)
        process_upload(state, file_id, "server", organization)
    return [file_id for file_id, _ in waiting]


@router.get("/files")
async def list_files(request: Request, who: Caller = Depends(caller), purpose: str | None = None,
               after: str | None = None, limit: int = Query(10_000, ge=1, le=10_000),
               order: Literal["asc", "desc"] = "desc"):
    statement = select(StoredFile).where(StoredFile.organization_id == who.organization_id)
    if purpose:
        statement = statement.where(StoredFile.purpose == purpose)
    with request.app.state.store.read() as session:
        try:
            result = page(session, statement, StoredFile, after=after, limit=limit,
                          newest_first=order == "desc")
        except CursorNotFound as exc:
            raise APIError(400, str(exc), param="after") from None
        return cursor_page([file_object(row) for row in result.data], result.has_more)


def _owned(request: Request, who: Caller, file_id: str):
    """The caller's file as a read-only row; 404 when there is none."""
    with request.app.state.store.read() as session:
        row = file_row(session, file_id, who.organization_id)
    if row is None:
        raise not_found("File", file_id)
    return row


@router.get("/files/{file_id}")
async def retrieve_file(file_id: str, request: Request, who: Caller = Depends(caller)):
    return file_object(_owned(request, who, file_id))


@router.delete("/files/{file_id}")
async def remove_file(file_id: str, request: Request, who: Caller = Depends(caller)):
    with request.app.state.store.session() as session:
        row = get_file(session, file_id, who.organization_id)
        if row is None:
            raise not_found("File", file_id)
        delete_file(session, request.app.state.settings.files_dir, row)
    await request.app.state.audit.append_async(
        "file.deleted", actor=who.actor, organization=who.organization_name,
        objects={"file": file_id}, hashes={"file": f"sha256:{row.sha256}"})
    return {"id": file_id, "object": "file", "deleted": True}


@router.get("/files/{file_id}/content")
async def file_content(file_id: str, request: Request, who: Caller = Depends(caller)):
    row = _owned(request, who, file_id)
    path = blob_path(request.app.state.settings.files_dir, row.sha256)
    if not path.is_file():
        raise APIError(500, f"The content of {file_id} is missing from the file store.",
                       code="file_content_missing")
    media = "text/csv" if row.filename.endswith(".csv") else "application/octet-stream"
    return FileResponse(path, media_type=media, filename=row.filename)
