"""The change log: every write that a cache depends on leaves a row here.

Replicas read the log after a PostgreSQL NOTIFY (or by polling on SQLite), so kill,
revoke and policy changes reach every process; the log, not the notification, is the
source of truth, so a missed notification delays a change but never loses it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from sqlalchemy import Integer, Select, bindparam, delete, func, insert, select, text, union
from sqlalchemy.ext.asyncio import AsyncConnection

from tether.clock import now_ms
from tether.store.plain_sql import PlainStatement
from tether.store.schema import change_log

__all__ = [
    "CHANNEL",
    "Change",
    "latest_change_id",
    "prune_changes",
    "read_changes",
    "recent_changes",
    "record_change",
    "record_change_on_writer",
]

CHANNEL = "tether_changes"


@dataclass(frozen=True, slots=True)
class Change:
    id: int
    kind: str
    ref: str


_RECORD = insert(change_log)
"""Built once: a change is recorded with most writes (each refused deletion's included)."""
_RECORD_PLAIN = PlainStatement.of(
    insert(change_log).values(
        kind=bindparam("p_kind"), ref=bindparam("p_ref"), created_at=bindparam("p_at")
    )
)


async def record_change(conn: AsyncConnection, kind: str, ref: str) -> None:
    """Call inside the writing transaction: the change is visible exactly when the write is."""
    await conn.execute(_RECORD, {"kind": kind, "ref": ref, "created_at": now_ms()})
    if conn.dialect.name == "postgresql":
        await conn.execute(text(f"NOTIFY {CHANNEL}"))


def record_change_on_writer(conn: sqlite3.Connection, kind: str, ref: str) -> None:
    """``record_change`` inside a transaction of SQLite's writer thread."""
    values = {"p_kind": kind, "p_ref": ref, "p_at": now_ms()}
    conn.execute(_RECORD_PLAIN.sql, _RECORD_PLAIN.values(values))


async def read_changes(
    conn: AsyncConnection, after_id: int, since_ms: int, limit: int = 1000, past_id: int = 0
) -> list[Change]:
    """Changes past ``after_id`` plus every change newer than ``since_ms``, in id order, the
    first ``limit`` of those past ``past_id`` (a page: the next one starts past its last).

    PostgreSQL sequences can commit out of order, so a reader re-reads a short recent
    window and skips the ids it has already applied.
    """
    params = {
        "p_after": max(after_id, past_id),
        "p_since": since_ms,
        "p_past": past_id,
        "p_limit": limit,
    }
    rows = await conn.execute(_RECENT, params)
    return [Change(r.id, r.kind, r.ref) for r in rows]


def _recent() -> Select[tuple[int, str, str]]:
    """Two index ranges joined, not ``id > ? OR created_at > ?``: SQLite and PostgreSQL
    walked the whole hour of changes kept for that, four times a second a process. A
    page's start is applied to the union, not inside it: there SQLite took it for a range
    of the primary key and walked the hour again."""
    columns = (change_log.c.id, change_log.c.kind, change_log.c.ref)
    recent = union(
        select(*columns).where(change_log.c.id > bindparam("p_after")),
        select(*columns).where(change_log.c.created_at > bindparam("p_since")),
    ).subquery()
    return (
        select(recent.c.id, recent.c.kind, recent.c.ref)
        .where(recent.c.id > bindparam("p_past"))
        .order_by(recent.c.id)
        .limit(bindparam("p_limit", type_=Integer))
    )


_RECENT = _recent()
"""Built once: building the union anew took more CPU than running it, at every poll and
at every catch-up after a write (a bulk deletion's thousand approval changes)."""


def recent_changes(after_id: int, since_ms: int, limit: int) -> Select[tuple[int, str, str]]:
    """The feed's statement with its values bound (to show its plan)."""
    return _RECENT.params(p_after=after_id, p_since=since_ms, p_past=0, p_limit=limit)


async def latest_change_id(conn: AsyncConnection) -> int:
    return int(
        (await conn.execute(select(func.coalesce(func.max(change_log.c.id), 0)))).scalar_one()
    )


async def prune_changes(conn: AsyncConnection, older_than_ms: int) -> None:
    """Changes older than ``older_than_ms``, but never the newest: SQLite gives a new row
    the largest id plus one, so a log pruned empty (a quiet hour) would hand out ids that
    followers have passed, and one further behind than the re-read window would skip the
    kill or revocation given one."""
    newest = select(func.max(change_log.c.id)).scalar_subquery()
    await conn.execute(
        delete(change_log).where(change_log.c.created_at < older_than_ms, change_log.c.id < newest)
    )
