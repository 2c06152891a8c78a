"""The change log: every write that a cache depends on leaves a row here.

Replicas read the log after a PostgreSQL NOTIFY (or by polling on SQLite), so kill,
revoke and policy changes reach every process; the log, not the notification, is the
source of truth, so a missed notification delays a change but never loses it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Text, bindparam, delete, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from tether.clock import now_ms
from tether.store.plain_sql import PlainStatement
from tether.store.schema import change_log

__all__ = [
    "CHANNEL",
    "Change",
    "newest_change_ids",
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
    conn: AsyncConnection,
    after_id: int,
    missing: Sequence[tuple[int, int]] = (),
    limit: int = 1000,
    past_id: int = 0,
) -> list[Change]:
    """Changes past ``after_id`` plus those in the ``missing`` ranges (inclusive) that have
    landed since, in id order, the first ``limit`` of those past ``past_id`` (a page: the
    next one starts past its last).

    PostgreSQL hands out ids as rows are inserted and transactions commit in any order: a
    reader that has passed ids not there yet (``missing``) looks for them again, however
    late their transactions commit.
    """
    params: dict[str, Any] = {"p_after": max(after_id, past_id), "p_limit": limit}
    if not missing:
        rows = await conn.execute(_PAST, params)
    elif conn.dialect.name == "postgresql":
        lows, highs = zip(*missing, strict=True)
        params.update(p_low=list(lows), p_high=list(highs), p_past=past_id)
        rows = await conn.execute(_PAST_OR_MISSING_POSTGRES, params)
    else:
        params.update(p_missing=json.dumps(list(missing)), p_past=past_id)
        rows = await conn.execute(_PAST_OR_MISSING_SQLITE, params)
    return [Change(r.id, r.kind, r.ref) for r in rows]


_PAST = (
    select(change_log.c.id, change_log.c.kind, change_log.c.ref)
    .where(change_log.c.id > bindparam("p_after"))
    .order_by(change_log.c.id)
    .limit(bindparam("p_limit", type_=Integer))
)
"""Built once, as the two below: building a statement anew took more CPU than running
it, four times a second a process and at every catch-up after a write."""

_PAST_OR_MISSING = """
SELECT id, kind, ref FROM (
  SELECT id, kind, ref FROM change_log WHERE id > :p_after
  UNION
  {missing}
) AS recent WHERE id > :p_past ORDER BY id LIMIT :p_limit
"""
"""Two lookups joined, not ``id > ? OR …``: SQLite and PostgreSQL walked the whole hour of
changes kept for such an ``OR``. A page's start is applied to the union, not inside it:
there SQLite took it for a range of the primary key and walked the hour again. The ranges
looked for are one bound value (a JSON array, two PostgreSQL arrays), each range a search
of the primary key from the ranges' side (``CROSS JOIN`` keeps SQLite's order)."""
_PAST_OR_MISSING_SQLITE = text(
    _PAST_OR_MISSING.format(
        missing="SELECT c.id, c.kind, c.ref FROM json_each(:p_missing) AS g "
        "CROSS JOIN change_log AS c "
        "WHERE c.id BETWEEN json_extract(g.value, '$[0]') AND json_extract(g.value, '$[1]')"
    )
).columns(id=Integer, kind=Text, ref=Text)
_PAST_OR_MISSING_POSTGRES = (
    text(
        _PAST_OR_MISSING.format(
            missing="SELECT c.id, c.kind, c.ref FROM "
            "unnest(CAST(:p_low AS INTEGER[]), CAST(:p_high AS INTEGER[])) AS g(low, high) "
            "JOIN change_log AS c ON c.id BETWEEN g.low AND g.high"
        )
    )
    .bindparams(
        bindparam("p_low", type_=postgresql.ARRAY(Integer)),
        bindparam("p_high", type_=postgresql.ARRAY(Integer)),
    )
    .columns(id=Integer, kind=Text, ref=Text)
)


def recent_changes(
    after_id: int, missing: Sequence[tuple[int, int]], limit: int
) -> tuple[str, dict[str, Any]]:
    """The feed's statement on SQLite and its values (to show its plan)."""
    if not missing:
        compiled = _PAST.compile(dialect=sqlite.dialect(paramstyle="named"))
        return str(compiled), {**compiled.params, "p_after": after_id, "p_limit": limit}
    params = {"p_after": after_id, "p_missing": json.dumps(list(missing)), "p_past": 0}
    return str(_PAST_OR_MISSING_SQLITE), {**params, "p_limit": limit}


async def newest_change_ids(conn: AsyncConnection, count: int) -> list[int]:
    """The ids among the newest ``count`` handed out that have committed, in order, read
    in one statement (one snapshot: an id that commits meanwhile is in both or neither)."""
    newest = select(func.coalesce(func.max(change_log.c.id), 0)).scalar_subquery()
    rows = await conn.execute(
        select(change_log.c.id).where(change_log.c.id > newest - count).order_by(change_log.c.id)
    )
    return [row.id for row in rows]


async def prune_changes(conn: AsyncConnection, older_than_ms: int) -> None:
    """Changes older than ``older_than_ms``, but never the newest: SQLite gives a new row
    the largest id plus one, so a log pruned empty (a quiet hour) would hand out ids that
    followers have passed, and they would skip the kill or revocation given one."""
    newest = select(func.max(change_log.c.id)).scalar_subquery()
    await conn.execute(
        delete(change_log).where(change_log.c.created_at < older_than_ms, change_log.c.id < newest)
    )
