"""Append-only, hash-chained audit log.

Each state change appends one JSON line to HOME/audit/log.jsonl (`Settings.audit_log`). A record carries its
sequence number, the SHA-256 of the previous record (`prev`) and its own hash over a canonical
encoding of everything else, so editing, removing or reordering any record breaks the chain at
that record.

A chain alone cannot stop someone from appending a well-formed forgery or cutting off the tail:
both leave a valid chain. So every append also rewrites a small anchor file, `head.json`, with
the sequence number and hash of the newest record; `verify` requires the log to end exactly there.
What the anchor protects against: truncation, appended records and rewritten tails by anyone who
edits log.jsonl alone (a stray script, a careless restore, an editor). What it does not protect
against: someone who can rewrite both files consistently. For that, set the audit key (setting `audit.key`, kept
outside HOME): every record then carries an HMAC over its hash, which cannot be forged
without the key; or copy a head hash (`strop audit verify` prints it) somewhere the attacker
cannot write and pass it back with `--anchor SEQ:HASH`, which proves the prefix up to it intact.

Appends are serialised across processes with an exclusive fcntl lock on a sibling lock file,
so several workers and the server can append concurrently; within a process, appends that
arrive together are written and fsynced as one batch (see _GroupCommit). `AuditLog` is the
handle every caller holds: it knows the file and the key, and for async routes decides whether
an append runs on the event loop or in a thread (`AuditLog.append_async`).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

GENESIS = "0" * 64
ANOMALY_ACTION = "audit.head_mismatch"
FIELDS = ("seq", "time", "actor", "organization", "action", "objects", "hashes", "details",
          "prev")


class AuditError(RuntimeError):
    """The log cannot be appended to or read; the message says which file and why."""


def head_path(log: Path) -> Path:
    return log.with_name("head.json")


def _canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def record_hash(record: dict) -> str:
    """SHA-256 of the record's content: every field except its own `hash` and `mac`."""
    body = {key: value for key, value in record.items() if key not in ("hash", "mac")}
    return hashlib.sha256(_canonical(body)).hexdigest()


def record_mac(key: str, digest: str) -> str:
    return hmac.new(key.encode("utf-8"), digest.encode("ascii"), hashlib.sha256).hexdigest()


def head_mac(key: str, seq: int, digest: str) -> str:
    return record_mac(key, f"head:{seq}:{digest}")


@contextmanager
def _locked(log: Path) -> Iterator[None]:
    with open(log.with_name(log.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _last_line(log: Path) -> bytes | None:
    """The last line of the log, read backwards from the end so appends stay O(1)."""
    if not log.exists() or log.stat().st_size == 0:
        return None
    with open(log, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        end = handle.tell()
        block = 4096
        data = b""
        position = end
        while position > 0:
            step = min(block, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
            if data.count(b"\n") >= 2 or position == 0:
                break
    if not data.endswith(b"\n"):
        raise AuditError(
            f"{log}: the last line is incomplete (no newline at the end), so it cannot be "
            "chained to; run `strop audit verify` and repair the log from a backup."
        )
    return data.rstrip(b"\n").rsplit(b"\n", 1)[-1]


HEAD_WIDTH = 256  # head.json is always this many bytes, so it is rewritten in place


def _write_head(log: Path, seq: int, digest: str, key: str | None) -> None:
    """Overwrite head.json in place with one small write, padded to a fixed width.

    Not write-to-temporary-and-rename: a rename measured ~1.1 ms on this project's machines,
    twice the rest of an append. One write of 256 bytes at offset 0
    lands within one disk sector, so a reader or a crash sees the old head or the new one; a
    crash before it lands leaves the previous head, which the next append reports as
    `audit.head_mismatch`, the same as a crash between the log write and a rename would."""
    head = {"seq": seq, "hash": digest}
    if key:  # with the key, a rewritten head cannot be made to look genuine
        head["mac"] = head_mac(key, seq, digest)
    line = json.dumps(head).ljust(HEAD_WIDTH - 1).encode() + b"\n"
    descriptor = os.open(head_path(log), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.pwrite(descriptor, line, 0)
        if os.fstat(descriptor).st_size != len(line):
            os.ftruncate(descriptor, len(line))
    finally:
        os.close(descriptor)


def _json_safe(name: str, value):
    try:
        _canonical(value)
    except (TypeError, ValueError) as exc:
        raise AuditError(f"audit field '{name}' is not JSON-serialisable: {exc}") from None
    return value


def append(path: Path | str, action: str, *, actor: str | None = None,
           organization: str | None = None, objects: dict[str, str] | None = None,
           hashes: dict[str, str] | None = None, details: dict | None = None,
           key: str | None = None) -> dict:
    """Append one record and return it (with `seq`, `prev` and `hash` filled in) once it is
    on disk (fsynced).

    `objects` names what the action touched ({"job": "ftjob-...", "file": "file-..."}),
    `hashes` their content hashes ({"training_file": "sha256:..."}), `details` anything else;
    with `key`, the record carries an HMAC of its hash.
    """
    if not action or not isinstance(action, str):
        raise AuditError("audit action must be a non-empty string, e.g. 'job.created'")
    log = Path(path)
    log.parent.mkdir(parents=True, exist_ok=True)
    fields = {"objects": dict(objects or {}), "hashes": dict(hashes or {}),
              "details": dict(details or {})}
    try:
        _canonical(fields)  # here, so that the caller gets the error, not the batch
    except (TypeError, ValueError):
        for name, value in fields.items():
            _json_safe(name, value)
        raise
    entry = _Pending(action, actor, organization, key=key, **fields)
    return _group_commit(log).append(entry)


@dataclass
class _Pending:
    """An append waiting for its turn; the record (or the error) is filled in when written."""

    action: str
    actor: str | None
    organization: str | None
    objects: dict
    hashes: dict
    details: dict
    key: str | None = None
    record: dict | None = None
    error: BaseException | None = None


class _GroupCommit:
    """Appends that arrive from this process's threads while another is being written go out
    together, after it: one file lock, one write, one fsync and one head update for all of
    them. Under many concurrent requests the fsync (milliseconds) is then paid once per batch
    instead of once per record, each in turn; a lone append costs what it always did."""

    def __init__(self, log: Path):
        self.log = log
        self.queue = threading.Lock()
        self.writer = threading.Lock()
        self.waiting: list[_Pending] = []
        # (seq, hash) of the last record this process wrote, and the state of log.jsonl and
        # head.json just after: while both files are unchanged, the next append chains on
        # without reading them back (another writer or an edit changes the log's size or
        # time, and then they are read as usual)
        self.left: tuple | None = None
        self.fsync_seconds: float | None = None  # typical, once there was an append

    def append(self, entry: _Pending) -> dict:
        with self.queue:
            self.waiting.append(entry)
        with self.writer:
            if entry.record is None and entry.error is None:
                with self.queue:
                    batch, self.waiting = self.waiting, []
                try:
                    self._write(batch)
                except BaseException as exc:
                    for pending in batch:
                        pending.error = exc
        if entry.error is not None:
            raise entry.error
        return entry.record

    def _write(self, batch: list[_Pending]) -> None:
        log = self.log
        with _locked(log):
            records = []
            if self.left is not None and self.left[2:] == _file_states(log):
                seq, prev, mismatch = self.left[0] + 1, self.left[1], None
            else:
                seq, prev = _log_end(log)
                mismatch = _head_mismatch(log, seq - 1, prev)
            if mismatch is not None:
                # The log's end is not where the last append left it: truncated, extended or
                # rewritten in between (or a crash between the two writes). Chaining on
                # silently would bury that, so it goes into the chain itself, where verify
                # reports it.
                records.append(_build(seq, prev, ANOMALY_ACTION, None, None, {}, {}, mismatch,
                                      batch[0].key))
                seq, prev = seq + 1, records[-1]["hash"]
            for entry in batch:
                record = _build(seq, prev, entry.action, entry.actor, entry.organization,
                                entry.objects, entry.hashes, entry.details, entry.key)
                records.append(record)
                entry.record = record
                seq, prev = seq + 1, record["hash"]
            self.left = None
            seconds = _write(log, records, batch[0].key)
            # a running average, so that one slow fsync (a journal commit) is not a verdict
            self.fsync_seconds = seconds if self.fsync_seconds is None else (
                0.9 * self.fsync_seconds + 0.1 * seconds)
            self.left = (seq - 1, prev, *_file_states(log))


_group_commits: dict[Path, _GroupCommit] = {}
_group_commits_lock = threading.Lock()


QUICK_FSYNC_SECONDS = 0.002


def append_is_quick(path: Path | str) -> bool:
    """Whether this process's appends to the log have fsynced within QUICK_FSYNC_SECONDS on
    average (a local SSD: ~0.1-0.3 ms), so that an async server may append on its event loop
    rather than hand the append to a thread (under load, the thread waits milliseconds for the
    interpreter lock at each of the append's dozen system calls). False before the first
    append."""
    seconds = _group_commit(Path(path)).fsync_seconds
    return seconds is not None and seconds < QUICK_FSYNC_SECONDS


def _group_commit(log: Path) -> _GroupCommit:
    with _group_commits_lock:
        found = _group_commits.get(log)
        if found is None:
            key = log.resolve()  # several spellings of one path share one queue
            found = _group_commits[log] = _group_commits.get(key) or _GroupCommit(key)
            _group_commits[key] = found
        return found


def _file_states(log: Path) -> tuple:
    """What changes when anyone writes log.jsonl or head.json: inode, size, modification
    time."""
    states = []
    for path in (log, head_path(log)):
        try:
            found = os.stat(path)
        except FileNotFoundError:
            states.append(None)
        else:
            states.append((found.st_ino, found.st_size, found.st_mtime_ns))
    return tuple(states)


def _log_end(log: Path) -> tuple[int, str]:
    """The next sequence number and the hash to chain to."""
    last = _last_line(log)
    if last is None:
        return 1, GENESIS
    try:
        previous = json.loads(last)
        return int(previous["seq"]) + 1, previous["hash"]
    except (ValueError, KeyError, TypeError):
        raise AuditError(
            f"{log}: the last record is not a valid audit record, so it cannot be chained to; "
            "run `strop audit verify`."
        ) from None


def _read_head(log: Path) -> dict | None:
    try:
        head = json.loads(head_path(log).read_text())
        return {"seq": int(head["seq"]), "hash": str(head["hash"])}
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return {"seq": None, "hash": None}


def _head_mismatch(log: Path, last_seq: int, last_hash: str) -> dict | None:
    head = _read_head(log)
    if head is None:
        if last_seq == 0:
            return None
        return {"head": None, "log_end": {"seq": last_seq, "hash": last_hash},
                "reason": "head.json was missing"}
    if head == {"seq": last_seq, "hash": last_hash}:
        return None
    return {"head": head, "log_end": {"seq": last_seq, "hash": last_hash},
            "reason": "the log did not end at the record head.json names"}


def _build(seq, prev, action, actor, organization, objects, hashes, details, key) -> dict:
    record = {
        "seq": seq,
        "time": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        "actor": actor,
        "organization": organization,
        "action": action,
        "objects": objects,
        "hashes": hashes,
        "details": details,
        "prev": prev,
    }
    record["hash"] = record_hash(record)
    if key:
        record["mac"] = record_mac(key, record["hash"])
    return record


def _write(log: Path, records: list[dict], key: str | None) -> float:
    """Write and fsync the records; returns how long the fsync took."""
    # One write on an O_APPEND descriptor: readers never see half a record from a live
    # writer, and the lock keeps writers from interleaving.
    descriptor = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, b"".join(_canonical(record) + b"\n" for record in records))
        started = time.perf_counter()
        os.fsync(descriptor)
        fsync_seconds = time.perf_counter() - started
    finally:
        os.close(descriptor)
    _write_head(log, records[-1]["seq"], records[-1]["hash"], key)
    return fsync_seconds


def read_records(path: Path | str) -> Iterator[dict]:
    """Every parseable record in file order (verification is `verify`'s job, not this one's)."""
    log = Path(path)
    if not log.exists():
        return
    with open(log, "rb") as handle:
        for raw in handle:
            raw = raw.strip()
            if not raw:
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def records(path: Path | str, object_id: str | None = None) -> list[dict]:
    """Records in order; with `object_id`, only those whose `objects` name it."""
    found = []
    for record in read_records(path):
        objects = record.get("objects") or {}
        if object_id is None or object_id in objects.values():
            found.append(record)
    return found


@dataclass(frozen=True)
class AuditLog:
    """The audit log of one strop home, with the key its records are signed with."""

    path: Path
    key: str | None = None

    def append(self, action: str, **fields) -> dict:
        return append(self.path, action, key=self.key, **fields)

    async def append_async(self, action: str, **fields) -> dict:
        """For async routes: on the event loop where fsync is quick (~0.3 ms on a local SSD; a
        thread would wait for the interpreter lock at each of the append's system calls under
        load), else in a thread, where appends that meet share one fsync."""
        if append_is_quick(self.path):
            return self.append(action, **fields)
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(lambda: self.append(action, **fields))

    def verify(self, anchor: str | None = None, held: dict | None = None):
        """The chain, the head and, with `held` (kind -> ids the database holds, see
        `strop.store.jobs.audited_objects`), that each of them has its records."""
        from strop.audit.verify import missing_records, verify

        result = verify(self.path, anchor=anchor, key=self.key)
        if held:
            result.problems.extend(missing_records(self.records(), held))
            result.ok = not result.problems
        return result

    def records(self, object_id: str | None = None) -> list[dict]:
        return records(self.path, object_id)
