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
    fixed: Mapping[str, Any]
    """The values the statement itself bound (``state == "pending"``), by name."""

    @classmethod
    def of(cls, statement: Executable) -> PlainStatement:
        compiled = statement.compile(dialect=sqlite.dialect())  # type: ignore[attr-defined]
        return cls(compiled.string, tuple(compiled.positiontup or ()), dict(compiled.params))

    def rows(self, rows: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        return [self.values(row) for row in rows]

    def values(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """``row``'s values in the order the ``?`` take them, the statement's own after."""
        return tuple(row[name] if name in row else self.fixed[name] for name in self.names)
