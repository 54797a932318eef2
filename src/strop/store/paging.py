"""Cursor paging in OpenAI's style: `after` is the id of the last object already seen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import Connection, Select, bindparam
from sqlalchemy.orm import Session

Row = TypeVar("Row")


class CursorNotFound(LookupError):
    def __init__(self, cursor: str):
        super().__init__(f"no object with id '{cursor}' to page after")
        self.cursor = cursor


@dataclass
class Page(Generic[Row]):
    data: list[Row]
    has_more: bool


def page(session: Session | Connection, statement: Select, table, *, after: str | None,
         limit: int, newest_first: bool, id_column=None, rows: bool = False,
         parameters: dict | None = None) -> Page:
    """Objects of `statement` (an ORM select), or its rows with `rows=True` (a select of
    columns), ordered by `table.seq`, starting past the one whose id is `after`. `table` is the
    mapped class, or a table's columns (`Job.__table__.c`) for a select of columns.
    `parameters` fill the statement's bind parameters: a statement built once with them (rather
    than with values) gets its paged forms built once too."""
    paged = _paged(statement, table, id_column, newest_first)
    values = dict(parameters or {}, page_limit=limit + 1)
    if after:
        cursor_seq = session.scalar(paged.cursor, {**values, "page_after": after})
        if cursor_seq is None:
            raise CursorNotFound(after)
        result = session.execute(paged.after_cursor, {**values, "page_cursor": cursor_seq})
    else:
        result = session.execute(paged.first, values)
    found = list(result if rows else result.scalars())
    return Page(found[:limit], len(found) > limit)


@dataclass
class _Paged:
    # the key's objects, kept so that no other object takes their ids while this entry lives
    statement: Select
    table: object
    id_column: object
    first: Select
    cursor: Select
    after_cursor: Select


_built: dict[tuple, _Paged] = {}


def _paged(statement: Select, table, id_column, newest_first: bool) -> _Paged:
    """The paged forms of `statement`, built on its first use: building a statement costs
    about as much as running it on SQLite (~0.2 ms for a page of jobs)."""
    key = (id(statement), id(table), id(id_column), newest_first)
    found = _built.get(key)
    if found is None:
        if len(_built) > 256:  # statements built per call never come back; keep it bounded
            _built.clear()
        seq = table.seq
        ids = id_column if id_column is not None else table.id
        order = seq.desc() if newest_first else seq.asc()
        limit = bindparam("page_limit")
        past = seq < bindparam("page_cursor") if newest_first else seq > bindparam("page_cursor")
        found = _built[key] = _Paged(
            statement, table, id_column, first=statement.order_by(order).limit(limit),
            cursor=statement.with_only_columns(seq).where(ids == bindparam("page_after")),
            after_cursor=statement.where(past).order_by(order).limit(limit))
    return found
