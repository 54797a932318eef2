"""Cursor paging in OpenAI's style: `after` is the id of the last object already seen."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import Select
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


def page(session: Session, statement: Select, table, *, after: str | None, limit: int,
         newest_first: bool, id_column=None, rows: bool = False) -> Page:
    """Objects of `statement` (an ORM select), or its rows with `rows=True` (a select of
    columns), ordered by `table.seq`, starting past the one whose id is `after`. `table` is the
    mapped class, or a table's columns (`Job.__table__.c`) for a select of columns."""
    id_column = id_column if id_column is not None else table.id
    if after:
        cursor_seq = session.scalar(
            statement.with_only_columns(table.seq).where(id_column == after))
        if cursor_seq is None:
            raise CursorNotFound(after)
        statement = statement.where(table.seq < cursor_seq if newest_first else table.seq > cursor_seq)
    order = table.seq.desc() if newest_first else table.seq.asc()
    result = session.execute(statement.order_by(order).limit(limit + 1))
    found = list(result if rows else result.scalars())
    return Page(found[:limit], len(found) > limit)
