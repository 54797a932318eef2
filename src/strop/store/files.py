"""Uploaded files: bytes on disk addressed by SHA-256, a row per upload."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from strop.store import ids
from strop.store.tables import StoredFile, row_columns

CHUNK = 1024 * 1024


class UploadTooLarge(ValueError):
    def __init__(self, limit: int):
        super().__init__(f"file is larger than the {limit:,}-byte upload limit "
                         "(setting server.max_upload_bytes, env STROP_SERVER_MAX_UPLOAD_BYTES)")
        self.limit = limit


def blob_path(files_dir: Path, sha256: str) -> Path:
    return files_dir / sha256[:2] / sha256


def write_blob(files_dir: Path, source: BinaryIO, limit: int) -> tuple[str, int]:
    """Copy `source` into the blob store; (sha256, size). Over `limit`, nothing is kept."""
    files_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    handle, temporary = tempfile.mkstemp(dir=files_dir, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(limit)
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())  # acknowledged means on disk, even if the machine stops
        sha = digest.hexdigest()
        target = blob_path(files_dir, sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(temporary, target)  # same content, same name: a re-upload changes nothing
        return sha, size
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


PARTIAL_UPLOAD_STALE_SECONDS = 600  # a live upload writes far more often than this


def remove_partial_uploads(files_dir: Path) -> list[Path]:
    """Remove `.upload-*` files a killed process left behind (not ones still being written,
    by this or another server sharing the file store)."""
    removed = []
    cutoff = time.time() - PARTIAL_UPLOAD_STALE_SECONDS
    for partial in files_dir.glob(".upload-*") if files_dir.is_dir() else ():
        try:
            if partial.stat().st_mtime < cutoff:
                partial.unlink()
                removed.append(partial)
        except FileNotFoundError:
            pass  # finished or removed meanwhile
    return removed


def add_file(session: Session, *, organization_id: str, filename: str, purpose: str,
             sha256: str, size: int, status: str = "uploaded") -> StoredFile:
    row = StoredFile(id=ids.file_id(), organization_id=organization_id, filename=filename,
                     purpose=purpose, bytes=size, sha256=sha256, created_at=ids.now(),
                     status=status)
    session.add(row)
    session.flush()
    return row


# Built once: constructing the expression costs about as much as running it.
_FILE_BY_ID = select(StoredFile).where(StoredFile.id == bindparam("file_id"),
                                       StoredFile.organization_id == bindparam("organization_id"))


_FILE_ROW_BY_ID = select(*row_columns(StoredFile)).where(
    StoredFile.__table__.c.id == bindparam("file_id"),
    StoredFile.__table__.c.organization_id == bindparam("organization_id"))


def get_file(session: Session, file_id: str, organization_id: str) -> StoredFile | None:
    return session.scalar(_FILE_BY_ID, {"file_id": file_id, "organization_id": organization_id})


def file_row(session: Session | Connection, file_id: str, organization_id: str):
    """The file as a read-only row with StoredFile's attributes, or None."""
    return session.execute(_FILE_ROW_BY_ID, {"file_id": file_id,
                                             "organization_id": organization_id}).first()


def delete_file(session: Session, files_dir: Path, row: StoredFile) -> None:
    """Drop the row; drop the bytes too when no other upload shares them."""
    session.delete(row)
    session.flush()
    shared = session.scalar(select(StoredFile.id).where(StoredFile.sha256 == row.sha256).limit(1))
    if shared is None:
        blob_path(files_dir, row.sha256).unlink(missing_ok=True)
