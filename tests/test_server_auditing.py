"""Audit appends from the event loop: one batch per turn of the loop, each caller its record."""

from __future__ import annotations

import asyncio

import pytest

from strop import audit
from strop.server.auditing import LoopAudit


def _count_fsyncs(monkeypatch) -> list:
    from strop.audit import log as audit_log

    calls = []
    real_fsync = audit_log.os.fsync

    def counted(descriptor):
        calls.append(descriptor)
        real_fsync(descriptor)

    monkeypatch.setattr(audit_log.os, "fsync", counted)
    return calls


def test_appends_of_one_turn_share_one_write_and_each_caller_gets_its_record(strop_home,
                                                                            monkeypatch):
    audit.append("server.started", actor="test")  # times one fsync: quick here
    fsyncs = _count_fsyncs(monkeypatch)
    writer = LoopAudit()

    async def many():
        return await asyncio.gather(*(writer.append("job.created", actor="local",
                                                    organization="local",
                                                    objects={"job": f"ftjob-{index}"})
                                      for index in range(12)))

    records = asyncio.run(many())
    assert [record["objects"]["job"] for record in records] == [f"ftjob-{i}" for i in range(12)]
    assert [record["seq"] for record in records] == list(range(2, 14))
    assert len(fsyncs) == 1
    assert audit.verify().ok


def test_a_bad_record_fails_its_own_caller_only(strop_home):
    writer = LoopAudit()

    async def both():
        return await asyncio.gather(
            writer.append("job.created", actor="local", organization="local",
                          details={"when": object()}),
            writer.append("job.created", actor="local", organization="local",
                          objects={"job": "ftjob-ok"}),
            return_exceptions=True)

    bad, good = asyncio.run(both())
    assert isinstance(bad, audit.AuditError) and "details" in str(bad)
    assert good["objects"] == {"job": "ftjob-ok"}
    assert audit.verify().records == 1


def test_slow_storage_appends_in_a_thread(strop_home, monkeypatch):
    from strop.audit import log as audit_log

    monkeypatch.setattr(audit_log, "QUICK_FSYNC_SECONDS", 0.0)  # every fsync counts as slow
    audit.append("server.started", actor="test")
    assert not audit.append_is_quick()
    writer = LoopAudit()

    async def one():
        return await writer.append("job.created", actor="local", organization="local")

    assert asyncio.run(one())["seq"] == 2
    assert audit.verify().ok


@pytest.mark.parametrize("quick", [True, False])
def test_a_failed_write_reaches_every_waiting_caller(strop_home, monkeypatch, quick):
    from strop.audit import log as audit_log

    audit.append("server.started", actor="test")
    if not quick:
        monkeypatch.setattr(audit_log, "QUICK_FSYNC_SECONDS", 0.0)

    def broken(log, records):
        raise OSError("disk full")

    monkeypatch.setattr(audit_log, "_write", broken)
    writer = LoopAudit()

    async def two():
        return await asyncio.gather(*(writer.append("job.created", actor="local",
                                                    organization="local") for _ in range(2)),
                                    return_exceptions=True)

    assert [str(result) for result in asyncio.run(two())] == ["disk full", "disk full"]
