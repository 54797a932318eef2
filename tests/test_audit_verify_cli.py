"""`strop audit verify` checks the log against the database: a log that was deleted, or cut
short together with its head, is valid on its own and must still fail while the database holds
objects whose records it lacks."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from strop.cli import app
from strop.settings import Settings
from strop.store import Store, access
from strop.store import ids
from strop.store import jobs as job_queries
from strop.store.tables import StoredFile

runner = CliRunner()


@pytest.fixture
def held(strop_home, audit_log):
    """A file and a job in the home's database, each with the record the server writes."""
    store = Store(Settings.load().database_url)
    with store.session() as session:
        organization = access.organization(session, "acme", create=True)
        file = StoredFile(id=ids.file_id(), organization_id=organization.id,
                          filename="train.jsonl", purpose="fine-tune", bytes=10,
                          sha256="1" * 64, created_at=ids.now(), status="processed")
        session.add(file)
        session.flush()
        job = job_queries.create_job(
            session, organization_id=organization.id, model="smollm2-135m-instruct",
            base_model="smollm2-135m-instruct", training_file=file.id, validation_file=None,
            method={"type": "supervised"}, seed=1, suffix=None, metadata=None)
        file_id = file.id
    store.close()
    audit_log.append("file.uploaded", actor="key_1", organization="acme",
                     objects={"file": file_id})
    audit_log.append("job.created", actor="key_1", organization="acme",
                     objects={"job": job.id, "training_file": file_id})
    return {"file": file_id, "job": job.id}


def test_an_intact_log_of_the_database_verifies(held):
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    assert "ok: 2 records intact" in result.output


def test_a_deleted_audit_folder_fails_and_names_what_lost_its_records(held, audit_log):
    shutil.rmtree(audit_log.path.parent)
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1, result.output
    assert "ok:" not in result.output
    assert held["job"] in result.output and held["file"] in result.output
    assert "no 'job.created' record" in result.output


@pytest.mark.parametrize("head", ["deleted", "rewritten"])
def test_a_cut_tail_fails_whatever_became_of_the_head(held, audit_log, head):
    lines = audit_log.path.read_text().splitlines(keepends=True)
    audit_log.path.write_text("".join(lines[:-1]))
    head_file = audit_log.path.parent / "head.json"
    if head == "deleted":
        head_file.unlink()
    else:  # without the audit key the head is unsigned: made to match the shortened log
        kept = json.loads(lines[0])
        head_file.write_text(json.dumps({"seq": kept["seq"], "hash": kept["hash"]}))
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1, result.output
    assert held["job"] in result.output and held["file"] not in result.output
