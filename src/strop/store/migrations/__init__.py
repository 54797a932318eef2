"""Alembic migrations: they own the schema (`strop db upgrade`; see strop.store.schema)."""
