"""Spend per UTC day, project and agent: what ``tether spend`` reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tether.records.fleet import ActivityDelta
from tether.store.database import Database
from tether.store.plain_sql import PlainStatement
from tether.store.schema import spend_daily
from tether.store.sqlite_writer import SqliteWriter

__all__ = ["SpendKey", "SpendStore"]

COUNTERS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "cost_micros",
)
GROUPS = {"day": ("day",), "project": ("project_id",), "agent": ("project_id", "agent_id")}


@dataclass(frozen=True, slots=True, order=True)
class SpendKey:
    day: str
    project_id: str
    agent_id: str


def _adding(insert_: Any) -> Any:
    """Add a day's counters to its row, made if new; built once, run for many rows."""
    statement = insert_(spend_daily).values(
        {name: bindparam(name) for name in ("day", "project_id", "agent_id", *COUNTERS)}
    )
    return statement.on_conflict_do_update(
        index_elements=["day", "project_id", "agent_id"],
        set_={
            name: getattr(spend_daily.c, name) + getattr(statement.excluded, name)
            for name in COUNTERS
        },
    )


_ADD = {True: _adding(pg_insert), False: _adding(sqlite_insert)}
_ADD_PLAIN = PlainStatement.of(_ADD[False])


class SpendStore:
    """On SQLite, written through the writer thread (``PlainStatement``)."""

    def __init__(self, db: Database, writer: SqliteWriter | None = None) -> None:
        self._db = db
        self._writer = writer

    async def add(self, spend: dict[SpendKey, ActivityDelta]) -> None:
        if not spend:
            return
        rows = [
            {
                "day": key.day,
                "project_id": key.project_id,
                "agent_id": key.agent_id,
                **{name: getattr(delta, name) for name in COUNTERS},
            }
            for key, delta in sorted(spend.items(), key=lambda item: item[0])
        ]
        if self._writer is not None:
            values = _ADD_PLAIN.rows(rows)
            await self._writer.transaction(lambda c: c.executemany(_ADD_PLAIN.sql, values))
            return
        async with self._db.write() as conn:
            await conn.execute(_ADD[self._db.is_postgres], rows)

    async def report(
        self,
        by: str,
        *,
        project_id: str | None = None,
        agent_id: str | None = None,
        since_day: str | None = None,
        until_day: str | None = None,
    ) -> list[dict[str, Any]]:
        """Totals grouped ``by`` day, project or agent, most expensive (or latest day) first."""
        columns = [getattr(spend_daily.c, name).label(name) for name in GROUPS[by]]
        sums = [func.sum(getattr(spend_daily.c, name)).label(name) for name in COUNTERS]
        query = select(*columns, *sums).group_by(*(getattr(spend_daily.c, n) for n in GROUPS[by]))
        if project_id:
            query = query.where(spend_daily.c.project_id == project_id)
        if agent_id:
            query = query.where(spend_daily.c.agent_id == agent_id)
        if since_day:
            query = query.where(spend_daily.c.day >= since_day)
        if until_day:
            query = query.where(spend_daily.c.day <= until_day)
        order = (
            spend_daily.c.day.desc() if by == "day" else func.sum(spend_daily.c.cost_micros).desc()
        )
        async with self._db.read() as conn:
            rows = await conn.execute(query.order_by(order))
        return [
            {k: (int(v) if k in COUNTERS else v) for k, v in row._mapping.items()} for row in rows
        ]
