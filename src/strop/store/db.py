"""The database handle: one engine per process, sessions per unit of work."""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from contextlib import contextmanager, nullcontext
from typing import Callable, Iterator, TypeVar

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from strop.store.schema import ensure_current

log = logging.getLogger("strop.store")
T = TypeVar("T")


# What SQLAlchemy raises when the database cannot be reached (restarted, network cut).
UNREACHABLE = (OperationalError, InterfaceError)
RETRY_SECONDS = (0.5, 1, 2, 5, 10)


def when_reachable(write: Callable[[], T], give_up: threading.Event | None = None) -> T:
    """`write()`, retried while the database is unreachable, so that work in progress (a
    training run's events, a job's outcome) waits for the database instead of failing for it.
    Raises the last error once `give_up` is set."""
    for attempt in itertools.count():
        try:
            return write()
        except UNREACHABLE as exc:
            if give_up is not None and give_up.is_set():
                raise
            delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
            log.warning("database unreachable (%s); retrying in %s s",
                        str(exc).splitlines()[0], delay)
            time.sleep(delay)


class StoreUnavailable(RuntimeError):
    """The database cannot be reached; the message names it (password hidden) and why."""


class Store:
    """SQLite (WAL) by default; any SQLAlchemy URL, PostgreSQL included, by `url`."""

    def __init__(self, url: str, check_schema: bool = True):
        """`check_schema=False` only for `strop db upgrade`, which brings the schema forward."""
        self.url = url
        is_sqlite = url.startswith("sqlite")
        options: dict = {}
        if is_sqlite:
            # The API and the worker thread share the file; 30 s of patience beats "locked".
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            options["pool_pre_ping"] = True
        self.engine = create_engine(url, json_serializer=_json_dumps,
                                    json_deserializer=_json_loads, **options)
        if is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        shown = self.engine.url.render_as_string(hide_password=True)
        try:
            with self.engine.connect():
                pass
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StoreUnavailable(f"cannot reach the database {shown}: {reason}") from None
        if check_schema:
            ensure_current(self.engine, shown)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite admits one writer; threads that collide wait in sqlite's busy handler, which
        # sleeps in steps of up to 100 ms. Queuing them on a lock instead keeps latency low.
        self._serial = threading.RLock() if is_sqlite else nullcontext()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        with self._serial:
            session = self._sessions()
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work. Under WAL readers never wait for the writer, so it skips
        the write queue; anything written in it is discarded. Objects read stay usable after
        the block (close() detaches them without expiring what was loaded)."""
        session = self._sessions()
        try:
            yield session
        finally:
            session.close()

    @contextmanager
    def rows(self) -> Iterator[Connection]:
        """Like `read`, for Core statements only (plain rows, no ORM objects): a bare
        connection costs about half of what a Session adds around a query."""
        with self.engine.connect() as connection:
            yield connection

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Like `session`, for Core statements only: committed when the block ends."""
        with self._serial, self.engine.begin() as connection:
            yield connection

    def close(self) -> None:
        self.engine.dispose()


def _json_dumps(value) -> str:
    """json.dumps, with the empty values of a new job's JSON columns answered directly."""
    if value is None:
        return "null"
    if isinstance(value, list) and not value:
        return "[]"
    return json.dumps(value)


def _json_loads(text: str):
    """json.loads with the values most JSON columns hold (no error, no metadata, no result
    files yet) answered without parsing: a page of 20 jobs decodes about 100 of them."""
    if text == "null":
        return None
    if text == "[]":
        return []
    return json.loads(text)


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
