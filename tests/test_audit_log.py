"""The audit log: appends chain, and every kind of tampering is caught and located."""

from __future__ import annotations

import json
import multiprocessing
import time

import pytest

from strop import audit
from strop.audit.log import AuditLog, record_hash
from strop.settings import Settings


def _write(log, records):
    log.write_text("".join(json.dumps(record) + "\n" for record in records))


def _read(log):
    return [json.loads(line) for line in log.read_text().splitlines()]


def _append_forgery(log):
    """Append a well-formed record that chains correctly, as a forger editing log.jsonl would."""
    records = _read(log)
    forged = {"seq": len(records) + 1, "time": records[-1]["time"], "actor": "admin",
              "organization": "org-1", "action": "model.deleted", "objects": {}, "hashes": {},
              "details": {}, "prev": records[-1]["hash"]}
    forged["hash"] = record_hash(forged)
    _write(log, records + [forged])


@pytest.fixture
def log_with_five(audit_log):
    for index in range(5):
        audit_log.append("job.event", actor=f"key-{index}", organization="org-1",
                         objects={"job": f"ftjob-{index % 2}"},
                         hashes={"file": f"sha256:{index}"}, details={"index": index})
    return audit_log.path


def test_append_chains_records_and_verifies(log_with_five, audit_log):
    records = _read(log_with_five)
    assert [record["seq"] for record in records] == [1, 2, 3, 4, 5]
    assert records[0]["prev"] == "0" * 64
    for before, after in zip(records, records[1:]):
        assert after["prev"] == before["hash"]
    assert all(record["hash"] == record_hash(record) for record in records)
    result = audit_log.verify()
    assert result.ok and result.records == 5 and result.problems == []
    assert result.head == {"seq": 5, "hash": records[-1]["hash"]}


def test_records_filters_by_object(log_with_five, audit_log):
    assert [record["seq"] for record in audit_log.records("ftjob-1")] == [2, 4]
    assert len(audit_log.records()) == 5
    assert audit_log.records("ftjob-missing") == []


def test_edited_field_is_caught(log_with_five, audit_log):
    records = _read(log_with_five)
    records[2]["actor"] = "someone-else"
    _write(log_with_five, records)
    result = audit_log.verify()
    assert not result.ok
    assert any(problem.startswith("record 3") and "edited" in problem
               for problem in result.problems)


def test_edited_field_with_recomputed_hash_breaks_the_next_link(log_with_five, audit_log):
    records = _read(log_with_five)
    records[1]["details"] = {"index": 99}
    records[1]["hash"] = record_hash(records[1])
    _write(log_with_five, records)
    result = audit_log.verify()
    assert any(problem.startswith("record 3") and "chain" in problem
               for problem in result.problems)


def test_deleted_record_is_caught(log_with_five, audit_log):
    records = _read(log_with_five)
    del records[1]
    _write(log_with_five, records)
    result = audit_log.verify()
    assert not result.ok
    assert any(problem.startswith("record 3") and "sequence number 3 where 2" in problem
               for problem in result.problems)


def test_deleted_last_record_is_caught_by_the_head(log_with_five, audit_log):
    records = _read(log_with_five)
    _write(log_with_five, records[:-1])
    result = audit_log.verify()
    assert not result.ok
    assert result.problems == [
        "records 5-5: removed from the end of the log (head.json names record 5)"]


def test_swapped_records_are_caught(log_with_five, audit_log):
    records = _read(log_with_five)
    records[1], records[2] = records[2], records[1]
    _write(log_with_five, records)
    result = audit_log.verify()
    assert not result.ok
    assert any(problem.startswith("record 3 (line 2)") for problem in result.problems)
    assert any(problem.startswith("record 2 (line 3)") for problem in result.problems)


def test_appended_forgery_with_a_valid_chain_is_caught_by_the_head(log_with_five, audit_log):
    _append_forgery(log_with_five)
    result = audit_log.verify()
    assert not result.ok
    assert any(problem.startswith("record 6 onwards") for problem in result.problems)


def test_rewritten_log_and_head_are_caught_by_key_or_saved_anchor(log_with_five, audit_log):
    saved_anchor = f"{audit_log.verify().head['seq']}:{audit_log.verify().head['hash']}"
    # An attacker with write access to STROP_HOME rebuilds the whole chain and the head.
    log_with_five.unlink()
    (log_with_five.parent / "head.json").unlink()
    for index in range(5):
        audit_log.append("job.event", actor="attacker", details={"index": index})
    assert audit_log.verify().ok  # the chain alone cannot tell
    anchored = audit_log.verify(anchor=saved_anchor)
    assert not anchored.ok and "anchor" in anchored.problems[0]
    keyed = audit.verify(audit_log.path, key="server-secret")
    assert not keyed.ok and all("HMAC" in problem or "not signed by the audit key" in problem
                                for problem in keyed.problems)


def test_hmac_key_verifies_its_own_records(strop_home, monkeypatch):
    monkeypatch.setenv("STROP_AUDIT_KEY", "server-secret")
    keyed = Settings.load().audit_log
    assert keyed.key == "server-secret"
    keyed.append("key.created", actor="admin")
    keyed.append("key.revoked", actor="admin")
    assert keyed.verify().ok
    assert all("mac" in record for record in keyed.records())
    assert not audit.verify(keyed.path, key="wrong-key").ok


def test_incomplete_last_line_is_reported_and_refuses_appends(log_with_five, audit_log):
    with open(log_with_five, "a") as handle:
        handle.write('{"seq": 6, "act')
    assert any("incomplete last line" in problem for problem in audit_log.verify().problems)
    with pytest.raises(audit.AuditError, match="incomplete"):
        audit_log.append("job.event")


def test_bad_arguments_are_named(audit_log):
    with pytest.raises(audit.AuditError, match="details"):
        audit_log.append("job.event", details={"when": object()})
    with pytest.raises(audit.AuditError, match="action"):
        audit_log.append("")
    with pytest.raises(audit.AuditError, match="SEQ:SHA256"):
        audit_log.verify(anchor="nonsense")


def _append_many(path, worker, count):
    for index in range(count):
        AuditLog(path).append("worker.tick", actor=f"worker-{worker}", details={"index": index})


def test_concurrent_appends_from_processes_keep_the_chain(tmp_path):
    path = tmp_path / "audit" / "log.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(path, worker, 40))
               for worker in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(30)
        assert process.exitcode == 0
    result = audit.verify(path)
    assert result.ok, result.problems
    assert result.records == 160


def test_appending_after_tampering_writes_the_mismatch_into_the_chain(log_with_five, audit_log):
    records = _read(log_with_five)
    _write(log_with_five, records[:3])  # two records cut off the end
    audit_log.append("job.event", actor="server")  # the server goes on appending
    result = audit_log.verify()
    assert not result.ok
    assert len(result.problems) == 1
    assert result.problems[0].startswith("record 4 (line 4): when it was appended, the log "
                                         "did not end at the record head.json names")
    assert "'seq': 5" in result.problems[0]


def test_appending_after_a_forgery_does_not_launder_it(log_with_five, audit_log):
    _append_forgery(log_with_five)
    audit_log.append("job.event", actor="server")
    problems = audit_log.verify().problems
    assert len(problems) == 1 and problems[0].startswith("record 7 (line 7): when it was")


def test_a_deleted_log_is_not_silently_restarted(log_with_five, audit_log):
    log_with_five.unlink()
    audit_log.append("job.event", actor="server")
    problems = audit_log.verify().problems
    assert len(problems) == 1 and problems[0].startswith("record 1 (line 1): when it was")


def test_concurrent_appends_share_fsyncs_and_keep_one_valid_chain(tmp_path, monkeypatch):
    import threading

    from strop.audit import log as audit_module

    path = tmp_path / "audit" / "log.jsonl"
    fsyncs = []
    real_fsync = audit_module.os.fsync

    def slow_fsync(descriptor):
        fsyncs.append(descriptor)
        time.sleep(0.01)  # a disk's flush: long enough for other threads to queue behind it
        real_fsync(descriptor)

    monkeypatch.setattr(audit_module.os, "fsync", slow_fsync)
    returned = []

    def writer(index):
        returned.append(audit_module.append(path, "job.created", actor=f"thread-{index}"))

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(record["seq"] for record in returned) == list(range(1, 25))
    assert len({record["actor"] for record in returned}) == 24
    assert len(fsyncs) < 24  # batched: some appends rode on another's fsync
    result = audit.verify(path)
    assert result.ok, result.problems
    assert result.records == 24


def test_append_is_quick_follows_the_measured_fsyncs(tmp_path, monkeypatch):
    from strop.audit import log as audit_module

    path = tmp_path / "audit" / "log.jsonl"
    assert not audit_module.append_is_quick(path)  # nothing measured yet: assume slow storage
    audit_module.append(path, "job.created", actor="test")
    monkeypatch.setattr(audit_module, "QUICK_FSYNC_SECONDS", 60.0)
    assert audit_module.append_is_quick(path)
    monkeypatch.setattr(audit_module, "QUICK_FSYNC_SECONDS", 0.0)
    assert not audit_module.append_is_quick(path)


def test_an_append_after_another_writer_chains_on_the_file_not_on_memory(tmp_path):
    """A process remembers where its last append left the log; a record another writer
    added since must be chained to, not overwritten in the chain."""
    from strop.audit import log as audit_module

    path = tmp_path / "audit" / "log.jsonl"
    audit_module.append(path, "job.created", actor="first")

    other = audit_module._GroupCommit(path.resolve())  # another process's queue, same files
    other.append(audit_module._Pending("job.started", "second", None, {}, {}, {}))
    third = audit_module.append(path, "job.succeeded", actor="first")
    assert third["seq"] == 3
    result = audit.verify(path)
    assert result.ok, result.problems


# What each mode protects against (docs/governance.md's table), one test per row.

def test_no_key_catches_edits_and_cut_tails_but_not_a_consistent_rewrite(log_with_five):
    log = AuditLog(log_with_five)
    records = _read(log_with_five)
    _write(log_with_five, records[:3])
    assert not log.verify().ok  # cut tail: head.json still names record 5
    head = {"seq": 3, "hash": records[2]["hash"]}
    (log_with_five.parent / "head.json").write_text(json.dumps(head))
    assert log.verify().ok  # tail cut and head rewritten to match: invisible without a key


def test_the_key_catches_a_cut_tail_with_a_rewritten_head(strop_home):
    keyed = AuditLog(strop_home / "audit" / "log.jsonl", key="server-secret")
    for index in range(5):
        keyed.append("job.event", details={"index": index})
    assert keyed.verify().ok
    records = _read(keyed.path)
    _write(keyed.path, records[:3])
    head = {"seq": 3, "hash": records[2]["hash"]}  # as an attacker without the key writes it
    (keyed.path.parent / "head.json").write_text(json.dumps(head))
    problems = keyed.verify().problems
    assert problems and "not signed by the audit key" in problems[0]


def test_the_database_cross_check_catches_a_deleted_or_truncated_log(log_with_five):
    log = AuditLog(log_with_five)
    log.append("job.created", objects={"job": "ftjob-kept"})
    held = {"job": ["ftjob-kept", "ftjob-gone"], "file": [], "model": []}
    result = log.verify(held=held)
    assert not result.ok
    assert result.problems == ["1 job(s) in the database have no 'job.created' record in the "
                               "audit log (ftjob-gone): records were removed"]
    for path in log_with_five.parent.iterdir():  # the whole audit folder deleted
        path.unlink()
    assert log.verify().ok  # an empty log is a valid log ...
    assert not log.verify(held=held).ok  # ... but not while the database holds jobs


def test_an_anchor_proves_the_prefix_even_against_a_full_rewrite(log_with_five):
    log = AuditLog(log_with_five)
    head = log.verify().head
    anchor = f"{head['seq']}:{head['hash']}"
    log_with_five.unlink()
    (log_with_five.parent / "head.json").unlink()
    for index in range(6):
        log.append("job.event", details={"rewritten": index})
    assert log.verify().ok and not log.verify(anchor=anchor).ok
