"""The database schema's version: Alembic migrations own it.

A new, empty database is created at the newest revision (the tables, then a stamp: the same
schema the migrations build, which a test keeps true). A database at an older revision, or one
an earlier release made without migrations, is refused until `strop db upgrade` brings it
forward, so that no process ever runs against a schema it does not know.
"""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from strop.store.tables import Base

# The revision whose schema the first release (0.1.0, tables made with create_all) had.
FIRST_REVISION = "0001"


class SchemaOutdated(RuntimeError):
    """The database's schema is older than this strop; the message says what to run."""


def _config(connection=None) -> Config:
    config = Config()
    config.set_main_option("script_location",
                           str(resources.files("strop.store") / "migrations"))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _has_strop_tables(engine: Engine) -> bool:
    return bool(set(inspect(engine).get_table_names()) & set(Base.metadata.tables))


def ensure_current(engine: Engine, url: str) -> None:
    """Create a new database's schema; refuse an old one with the command that upgrades it."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None and not _has_strop_tables(engine):
        Base.metadata.create_all(engine)
        with engine.begin() as connection:
            command.stamp(_config(connection), head)
        return
    found = f"revision {current}" if current else "the schema of strop 0.1.0 (no revision)"
    raise SchemaOutdated(f"the database {url} has {found}; this strop needs revision {head}. "
                         "Run `strop db upgrade` (with the same STROP_DATABASE_URL), then start "
                         "again.")


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the database to the newest revision; returns (revision before, revision after).
    A database an earlier release made without migrations is first stamped with the revision
    whose schema it has."""
    before = current_revision(engine)
    with engine.begin() as connection:
        config = _config(connection)
        if before is None and _has_strop_tables(engine):
            command.stamp(config, FIRST_REVISION)
        command.upgrade(config, "head")
    return before, current_revision(engine)
