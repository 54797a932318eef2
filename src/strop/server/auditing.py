"""Audit records of async routes, appended from the event loop in batches.

The records of the requests the loop handles in one turn are appended together, one lock, one
write and one fsync for all of them, before any of those requests is answered. Where fsync is
quick (a local SSD: ~0.1-0.3 ms) the batch is written on the loop itself: handing it to a thread
costs more, because under load the thread waits milliseconds for the interpreter lock at each of
the append's system calls. Where fsync is slow the batch goes to a thread, so that the loop
keeps serving while it waits (see strop.audit.append_is_quick).
"""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool

from strop import audit


class LoopAudit:
    """One per application; used from its event loop only."""

    def __init__(self) -> None:
        self.pending: list[tuple[object, asyncio.Future]] = []

    async def append(self, action: str, *, actor: str, organization: str, **fields) -> dict:
        """Append one record (written with the others of this turn of the loop); returns it
        once it is on disk."""
        entry = audit.entry(action, actor=actor, organization=organization, **fields)
        loop = asyncio.get_running_loop()
        if not self.pending:
            loop.call_soon(self._flush)  # after the handlers already scheduled in this turn
        future = loop.create_future()
        self.pending.append((entry, future))
        return await future

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        if audit.append_is_quick():
            _settle(batch, lambda: audit.append_entries([entry for entry, _ in batch]))
        else:
            asyncio.get_running_loop().create_task(self._flush_in_thread(batch))

    async def _flush_in_thread(self, batch) -> None:
        try:
            records = await run_in_threadpool(audit.append_entries, [entry for entry, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
            _fail(batch, exc)
        else:
            _resolve(batch, records)


def _settle(batch, append) -> None:
    try:
        records = append()
    except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
        _fail(batch, exc)
    else:
        _resolve(batch, records)


def _resolve(batch, records) -> None:
    for (_, future), record in zip(batch, records):
        if not future.done():  # a cancelled request (client gone) no longer waits
            future.set_result(record)


def _fail(batch, error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)
