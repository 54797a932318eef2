"""`strop db upgrade` and `strop db status`: the schema's revision (see strop.store.schema)."""

from __future__ import annotations

import typer

from strop.cli.app import app, console, fail, load_settings

db_app = typer.Typer(help="The database's schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _store():
    from strop.store import Store
    from strop.store.db import StoreUnavailable

    try:
        return Store(load_settings().database_url, check_schema=False)
    except StoreUnavailable as exc:
        raise fail(str(exc), code=1)


@db_app.command("upgrade")
def upgrade() -> None:
    """Bring the database's schema to the revision this strop needs (safe to run again)."""
    from strop.store import schema

    store = _store()
    before, after = schema.upgrade(store.engine)
    if before == after:
        console.print(f"The database is at revision {after}, the newest: nothing to do.")
    else:
        console.print(f"Upgraded the database from {before or 'strop 0.1.0 (no revision)'} "
                      f"to revision {after}.")


@db_app.command("status")
def status() -> None:
    """Print the database's revision and the one this strop needs."""
    from strop.store import schema

    current, head = schema.current_revision(_store().engine), schema.head_revision()
    state = "current" if current == head else "needs `strop db upgrade`"
    console.print(f"database revision {current or 'none'}, this strop needs {head}: {state}")
