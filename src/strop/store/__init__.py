"""The job store: SQLAlchemy over SQLite (WAL, in STROP_HOME) or PostgreSQL by URL."""

from strop.store.db import Store
from strop.store.paging import CursorNotFound, Page
from strop.store.served import resolve_served_model, store_resolver

__all__ = ["CursorNotFound", "Page", "Store", "resolve_served_model", "store_resolver"]
