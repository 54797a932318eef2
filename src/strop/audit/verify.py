"""Verification of the audit log: the chain, each record's hash and HMAC, and the head."""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from strop.audit.log import (ANOMALY_ACTION, FIELDS, GENESIS, AuditError, head_mac, head_path,
                             record_hash, record_mac)


@dataclass
class VerifyResult:
    ok: bool
    records: int
    problems: list[str] = field(default_factory=list)
    head: dict | None = None  # {"seq", "hash"} of the last record read

    def to_dict(self) -> dict:
        return {"ok": self.ok, "records": self.records, "problems": list(self.problems),
                "head": self.head}


def _parse_anchor(anchor: str) -> tuple[int, str]:
    seq, separator, digest = anchor.partition(":")
    if not separator or not seq.isdigit() or len(digest) != 64:
        raise AuditError(f"anchor '{anchor}' must look like SEQ:SHA256 (e.g. 42:9f86d0...)")
    return int(seq), digest.lower()


def verify(path: Path | str, *, anchor: str | None = None,
           key: str | None = None) -> VerifyResult:
    """Check the whole chain and the head anchor; every problem names the record it is in.

    `anchor` ("SEQ:HASH") is a head hash saved elsewhere earlier; `key` checks each record's
    HMAC.
    """
    log = Path(path)
    expected_anchor = _parse_anchor(anchor) if anchor else None
    problems: list[str] = []
    prev = GENESIS
    expected_seq = 1
    count = 0
    last: dict | None = None
    anchor_seen = False
    lines = log.read_bytes().split(b"\n") if log.exists() else []
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        problems.append(f"line {len(lines)}: incomplete last line (no newline at the end)")
    for number, raw in enumerate(lines, start=1):
        where = f"line {number}"
        try:
            record = json.loads(raw)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError:
            problems.append(f"{where}: not a JSON record")
            prev, expected_seq = None, expected_seq + 1
            continue
        count += 1
        seq = record.get("seq")
        where = f"record {seq} (line {number})"
        missing = [name for name in (*FIELDS, "hash") if name not in record]
        if missing:
            problems.append(f"{where}: missing field(s) {', '.join(missing)}")
        if seq != expected_seq:
            problems.append(
                f"{where}: sequence number {seq} where {expected_seq} was expected "
                "(a record was removed, inserted or moved)"
            )
        if record.get("hash") != record_hash(record):
            problems.append(f"{where}: content does not match its hash (the record was edited)")
        if prev is not None and record.get("prev") != prev:
            problems.append(
                f"{where}: does not chain to the record before it (a record before it was "
                "removed, reordered or edited)"
            )
        if key:
            if "mac" not in record:
                problems.append(f"{where}: no HMAC although a key is set (forged or written "
                                "without the key)")
            elif not hmac.compare_digest(record["mac"], record_mac(key, str(record.get("hash")))):
                problems.append(f"{where}: HMAC does not match (forged, or a different key)")
        if record.get("action") == ANOMALY_ACTION:
            details = record.get("details") or {}
            problems.append(
                f"{where}: when it was appended, {details.get('reason', 'the head did not match')}"
                f" (head: {details.get('head')}, log ended at: {details.get('log_end')}); records "
                "were removed, added or rewritten before it, or an append crashed")
        if expected_anchor and seq == expected_anchor[0]:
            anchor_seen = True
            if record.get("hash") != expected_anchor[1]:
                problems.append(f"{where}: hash differs from the anchor you saved "
                                "(the log was rewritten up to here)")
        prev = record.get("hash")
        expected_seq = (seq if isinstance(seq, int) else expected_seq) + 1
        last = record
    if expected_anchor and not anchor_seen:
        problems.append(f"record {expected_anchor[0]} named by the anchor is not in the log "
                        "(the log was truncated or rewritten)")
    problems.extend(_check_head(log, last, key))
    head = {"seq": last["seq"], "hash": last.get("hash")} if last else None
    return VerifyResult(ok=not problems, records=count, problems=problems, head=head)


def _check_head(log: Path, last: dict | None, key: str | None) -> list[str]:
    head_file = head_path(log)
    if not head_file.exists():
        if last is None:
            return []
        return [f"{head_file.name} is missing: the end of the log cannot be confirmed "
                "(records may have been appended or removed at the end)"]
    try:
        head = json.loads(head_file.read_text())
        head_seq, head_hash = int(head["seq"]), str(head["hash"])
    except (ValueError, KeyError, TypeError):
        return [f"{head_file.name} is not valid JSON with seq and hash"]
    if key and not hmac.compare_digest(str(head.get("mac", "")),
                                       head_mac(key, head_seq, head_hash)):
        return [f"{head_file.name} is not signed by the audit key (rewritten, or written "
                "without the key): the end of the log cannot be trusted"]
    if last is None:
        return [f"the log is empty but {head_file.name} names record {head_seq}: the log "
                "was deleted or truncated"]
    last_seq = last.get("seq")
    if last_seq == head_seq and last.get("hash") == head_hash:
        return []
    if isinstance(last_seq, int) and last_seq > head_seq:
        return [f"record {head_seq + 1} onwards: appended after the last recorded head "
                f"(record {head_seq}); forged, or written by a process that crashed before "
                "updating the head"]
    if isinstance(last_seq, int) and last_seq < head_seq:
        return [f"records {last_seq + 1}-{head_seq}: removed from the end of the log "
                f"({head_file.name} names record {head_seq})"]
    return [f"record {last_seq}: the last record's hash differs from {head_file.name} "
            "(the end of the log was rewritten)"]


# The audit action that must exist for each kind of object the database holds.
EXPECTED_ACTIONS = {"job": "job.created", "file": "file.uploaded", "model": "job.succeeded"}


def missing_records(records: Iterable[dict], held: dict[str, Iterable[str]]) -> list[str]:
    """Problems for objects the database holds whose records are not in the log: `held` maps
    a kind ("job", "file", "model") to ids. This catches a log truncated or deleted together
    with its head, which the chain alone cannot."""
    seen = {(record.get("action"), value) for record in records
            for value in (record.get("objects") or {}).values()}
    problems = []
    for kind, ids in held.items():
        action = EXPECTED_ACTIONS[kind]
        absent = sorted(object_id for object_id in ids if (action, object_id) not in seen)
        if absent:
            shown = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5
                                              else "")
            problems.append(f"{len(absent)} {kind}(s) in the database have no '{action}' "
                            f"record in the audit log ({shown}): records were removed")
    return problems
