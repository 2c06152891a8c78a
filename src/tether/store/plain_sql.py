"""A Core statement compiled once for the SQLite writer thread, so a periodic flush runs
there as plain ``executemany`` instead of as an ORM transaction on a second connection,
whose write lock, held across event-loop turns, stalls the writer's commits (#29)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.expression import Executable

__all__ = ["PlainStatement"]


@dataclass(frozen=True, slots=True)
class PlainStatement:
    sql: str
    names: tuple[str, ...]
    """The bound parameters in the order the ``?`` take them (a name used twice is twice)."""

    @classmethod
    def of(cls, statement: Executable) -> PlainStatement:
        compiled = statement.compile(dialect=sqlite.dialect())  # type: ignore[attr-defined]
        return cls(compiled.string, tuple(compiled.positiontup or ()))

    def rows(self, rows: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        return [tuple(row[name] for name in self.names) for row in rows]
