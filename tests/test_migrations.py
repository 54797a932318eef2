"""Alembic owns the schema: migrations build what the code expects, an old database is refused
with the command that upgrades it, and the upgrade keeps its data."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from strop.cli import app
from strop.store import Store, schema
from strop.store.tables import Base

OLD_RELEASE = Path(__file__).parent / "fixtures" / "db" / "strop-0.1.0.sql"


def test_migrations_build_exactly_the_schema_the_code_expects(database_url):
    engine = create_engine(database_url)
    assert schema.upgrade(engine) == (None, schema.head_revision())
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    engine.dispose()


def test_a_new_database_is_created_at_the_newest_revision(database_url):
    store = Store(database_url)
    assert schema.current_revision(store.engine) == schema.head_revision()
    store.close()


def _old_database(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        connection.executescript(OLD_RELEASE.read_text())
    return f"sqlite:///{path}"


def test_a_database_of_the_previous_release_is_refused_then_upgraded(strop_home):
    strop_home.mkdir(parents=True)
    url = _old_database(strop_home / "strop.db")
    with pytest.raises(schema.SchemaOutdated, match="strop db upgrade"):
        Store(url)
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert "from strop 0.1.0 (no revision) to revision" in result.output
    store = Store(url)
    with store.engine.connect() as connection:
        job = connection.execute(text("SELECT id, suffix, status FROM jobs")).one()
        attempts = connection.execute(text("SELECT count(*) FROM job_attempts")).scalar()
        blobs = connection.execute(text("SELECT sha256, refs FROM blobs")).all()
    assert job.id.startswith("ftjob-") and (job.suffix, job.status) == ("old", "validating_files")
    assert attempts == 0
    assert [tuple(row) for row in blobs] == [("ab" * 32, 1)]  # the stored file's bytes, counted
    again = CliRunner().invoke(app, ["db", "upgrade"])
    assert "nothing to do" in again.output


def test_the_server_refuses_to_start_on_an_old_schema(strop_home):
    strop_home.mkdir(parents=True)
    _old_database(strop_home / "strop.db")
    done = subprocess.run([sys.executable, "-m", "strop.cli", "serve", "--port", "8765"],
                          env=os.environ | {"STROP_HOME": str(strop_home)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "strop db upgrade" in done.stderr and "no revision" in done.stderr


def test_an_unreachable_database_is_named_with_its_password_hidden(strop_home):
    done = subprocess.run([sys.executable, "-m", "strop.cli", "serve"],
                          env=os.environ | {"STROP_HOME": str(strop_home),
                                            "STROP_DATABASE_URL":
                                                "postgresql+psycopg://u:hunter2@127.0.0.1:1/db"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "cannot reach the database postgresql+psycopg://u:***@127.0.0.1:1/db" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
