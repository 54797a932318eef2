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
         newest_first: bool, id_column=None) -> Page:
    """Rows of `statement` ordered by `table.seq`, starting past the row whose id is `after`."""
    id_column = id_column if id_column is not None else table.id
    if after:
        cursor_seq = session.scalar(
            statement.with_only_columns(table.seq).where(id_column == after))
        if cursor_seq is None:
            raise CursorNotFound(after)
        statement = statement.where(table.seq < cursor_seq if newest_first else table.seq > cursor_seq)
    order = table.seq.desc() if newest_first else table.seq.asc()
    rows = list(session.scalars(statement.order_by(order).limit(limit + 1)))
    return Page(rows[:limit], len(rows) > limit)
