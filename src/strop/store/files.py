"""Uploaded files: bytes on disk addressed by SHA-256, a row per upload."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Connection, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from strop.store import ids
from strop.store.tables import Blob, StoredFile, row_columns

CHUNK = 1024 * 1024


class UploadTooLarge(ValueError):
    def __init__(self, limit: int):
        super().__init__(f"file is larger than the {limit:,}-byte upload limit "
                         "(setting server.max_upload_bytes, env STROP_SERVER_MAX_UPLOAD_BYTES)")
        self.limit = limit


def blob_path(files_dir: Path, sha256: str) -> Path:
    return files_dir / sha256[:2] / sha256


@dataclass
class ReceivedBlob:
    """Bytes received into a temporary file of the blob store, not yet any file's content:
    `add_file` puts them in place, `discard` drops them."""

    temporary: Path
    sha256: str
    size: int

    def discard(self) -> None:
        self.temporary.unlink(missing_ok=True)


def receive_blob(files_dir: Path, source: BinaryIO, limit: int) -> ReceivedBlob:
    """Copy `source` into a temporary file of the blob store, on disk (fsynced) when this
    returns. Over `limit`, nothing is kept."""
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
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return ReceivedBlob(Path(temporary), digest.hexdigest(), size)


def _count_reference(session: Session, sha256: str, change: int) -> int:
    """Add `change` to the blob's reference count and return the new count. The statement
    locks the blob's row (PostgreSQL) or the database (SQLite) until the transaction ends, so
    an upload placing these bytes and a delete removing them never interleave."""
    dialect = session.get_bind().dialect.name
    if change > 0:
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        statement = insert(Blob).values(sha256=sha256, refs=change)
        session.execute(statement.on_conflict_do_update(
            index_elements=[Blob.sha256], set_={"refs": Blob.refs + change}))
    else:
        session.execute(update(Blob).where(Blob.sha256 == sha256)
                        .values(refs=Blob.refs + change))
    return session.scalar(select(Blob.refs).where(Blob.sha256 == sha256)) or 0


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


def add_file(session: Session, files_dir: Path, blob: ReceivedBlob, *, organization_id: str,
             filename: str, purpose: str, status: str = "uploaded") -> StoredFile:
    """A file row for received bytes, and the bytes in place, in the caller's transaction."""
    _count_reference(session, blob.sha256, +1)
    target = blob_path(files_dir, blob.sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(blob.temporary, target)  # same content, same name: a re-upload changes nothing
    row = StoredFile(id=ids.file_id(), organization_id=organization_id, filename=filename,
                     purpose=purpose, bytes=blob.size, sha256=blob.sha256,
                     created_at=ids.now(), status=status)
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
    """Drop the row; drop the bytes too when no other file shares them (counted under the
    blob's lock, so an upload of the same bytes in between keeps them)."""
    session.delete(row)
    session.flush()
    if _count_reference(session, row.sha256, -1) <= 0:
        session.execute(delete(Blob).where(Blob.sha256 == row.sha256))
        blob_path(files_dir, row.sha256).unlink(missing_ok=True)
