"""The audit table, read side: queries in chain order, and walking the hash chain
(writes go through ``audit_appender``)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, delete, func, literal_column, or_, select
from sqlalchemy.engine import make_url

from tether.audit.chain import ChainHead, ChainReport, ChainWalker
from tether.errors import BadRequest, Conflict, StoreUnavailable
from tether.store.database import Database
from tether.store.schema import audit_chain, audit_events

__all__ = ["AuditStore", "ResultCount"]

VERIFY_PAGE = 5000
DECISION_PAGE = 10_000
DECISION_RESULTS = ("allow", "deny", "pending")


@dataclass(frozen=True, slots=True)
class ResultCount:
    start_ms: int
    """The bucket's start: a multiple of the bucket's length since the epoch."""
    result: str
    count: int


_DECISION_COLUMNS = (
    audit_events.c.ts,
    audit_events.c.agent_name,
    audit_events.c.source,
    audit_events.c.action,
    audit_events.c.resource,
    audit_events.c.result,
    audit_events.c.code,
    audit_events.c.attributes,
)
"""What replay and suggest read of a decision (``decision_pages`` adds ``seq``)."""


class AuditStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def query(
        self,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        project_id: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        action_prefix: str | None = None,
        result: str | None = None,
        after_seq: int | None = None,
        before: tuple[int, int] | None = None,
        newest_first: bool = False,
        limit: int = 500,
    ) -> list[dict[str, Any]]:
        """Events in the order they were written (chain order), ``after_seq`` paging on.

        ``newest_first``: newest time first, ties in reverse chain order, ``before`` (the
        last page's last ts and seq) paging back. By time because every filter's index
        is (filter, ts): the newest page of an agent's events is read from the end of
        its index, where reverse chain order would sort all of them first."""
        if newest_first:
            query = select(audit_events).order_by(
                audit_events.c.ts.desc(), audit_events.c.seq.desc()
            )
        else:
            query = select(audit_events).order_by(audit_events.c.seq)
        query = query.limit(limit)
        if after_seq is not None:
            query = query.where(audit_events.c.seq > after_seq)
        if before is not None:
            ts, seq = before
            query = query.where(
                audit_events.c.ts <= ts,
                or_(audit_events.c.ts < ts, audit_events.c.seq < seq),
            )
        if result:
            query = query.where(audit_events.c.result == result)
        if agent_id:
            query = query.where(audit_events.c.agent_id == agent_id)
        if session_id:
            query = query.where(audit_events.c.session_id == session_id)
        if project_id:
            query = query.where(audit_events.c.project_id == project_id)
        if since_ms is not None:
            query = query.where(audit_events.c.ts >= since_ms)
        if until_ms is not None:
            query = query.where(audit_events.c.ts < until_ms)
        if action_prefix:
            query = query.where(audit_events.c.action.startswith(action_prefix, autoescape=True))
        async with self._db.read() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def decision_pages(
        self,
        *,
        project_id: str,
        since_ms: int,
        until_ms: int,
        attributes_containing: str | None = None,
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        """The project's decisions of a window, a page at a time, in time order: (ts,
        agent_name, source, action, resource, result, code, attributes, seq). Paged by (ts, seq)
        along the (project, ts) index, so a week of a million decisions streams in pages.
        ``attributes_containing``: only events whose attributes' JSON holds this text."""
        columns = (*_DECISION_COLUMNS, audit_events.c.seq)
        after: tuple[int, int] | None = None
        while True:
            query = (
                select(*columns)
                .where(
                    audit_events.c.project_id == project_id,
                    audit_events.c.ts >= since_ms,
                    audit_events.c.ts < until_ms,
                    audit_events.c.result.in_(DECISION_RESULTS),
                )
                .order_by(audit_events.c.ts, audit_events.c.seq)
                .limit(DECISION_PAGE)
            )
            if attributes_containing is not None:
                query = query.where(
                    audit_events.c.attributes.contains(attributes_containing, autoescape=True)
                )
            if after is not None:
                ts, seq = after
                query = query.where(
                    audit_events.c.ts >= ts,
                    or_(audit_events.c.ts > ts, audit_events.c.seq > seq),
                )
            async with self._db.read() as conn:
                rows = (await conn.execute(query)).all()
            if not rows:
                return
            yield list(rows)
            if len(rows) < DECISION_PAGE:
                return
            after = (int(rows[-1][0]), int(rows[-1][8]))

    async def decision_rows(
        self, *, project_id: str, since_ms: int, until_ms: int
    ) -> AsyncIterator[Sequence[Sequence[Any]]]:
        """The project's decisions of a window, a page at a time, in no set order: (ts,
        agent_name, source, action, resource, result, code, attributes). One streaming
        query of only these columns (a million rows: replay, suggest): on a SQLite file a
        plain read-only ``sqlite3`` cursor, elsewhere a server-side cursor; rows are the
        driver's tuples, never ORM or pydantic objects."""
        query = select(*_DECISION_COLUMNS).where(
            audit_events.c.project_id == project_id,
            audit_events.c.ts >= since_ms,
            audit_events.c.ts < until_ms,
            audit_events.c.result.in_(DECISION_RESULTS),
        )
        path = None if self._db.is_postgres else make_url(self._db.url).database
        if path and path != ":memory:" and Path(path).is_file():
            async for page in _sqlite_pages(path, project_id, since_ms, until_ms):
                yield page
            return
        async with self._db.read() as conn:
            result = await conn.stream(query.execution_options(yield_per=DECISION_PAGE))
            async for rows in result.partitions():
                yield rows

    async def count_by_result(
        self,
        *,
        since_ms: int,
        until_ms: int,
        bucket_ms: int,
        project_id: str | None = None,
        agent_id: str | None = None,
    ) -> list[ResultCount]:
        """Events per time bucket and result, in bucket then result order; empty buckets
        are left out. Reads every event of the window (through the ts index, or the
        project's or agent's), so the caller bounds the window."""
        # The length as a literal: PostgreSQL groups by the expression only when the
        # SELECT and GROUP BY spell it alike, which two bound parameters do not.
        length = literal_column(str(int(bucket_ms)), BigInteger)
        start = (audit_events.c.ts // length) * length
        query = (
            select(start.label("start"), audit_events.c.result, func.count().label("n"))
            .where(audit_events.c.ts >= since_ms, audit_events.c.ts < until_ms)
            .group_by(start, audit_events.c.result)
            .order_by(start, audit_events.c.result)
        )
        if project_id:
            query = query.where(audit_events.c.project_id == project_id)
        if agent_id:
            query = query.where(audit_events.c.agent_id == agent_id)
        async with self._db.read() as conn:
            rows = await conn.execute(query)
        return [ResultCount(int(r.start), r.result, int(r.n)) for r in rows]

    async def chain_head(self) -> ChainHead:
        async with self._db.read() as conn:
            row = (await conn.execute(select(audit_chain.c.seq, audit_chain.c.hash))).one()
        return ChainHead(row.seq, row.hash)

    async def chain_base(self) -> ChainHead:
        """The last event removed by a prune (``0`` and the genesis hash if none was)."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(audit_chain.c.base_seq, audit_chain.c.base_hash))
            ).one()
        return ChainHead(row.base_seq, row.base_hash)

    async def prune(self, before_ms: int, exported: ChainHead) -> ChainHead | None:
        """Remove the events before ``before_ms``, all of which must be in a verified export
        that ends at ``exported`` (an event the trail still holds with that hash). Returns
        the new base (the last event removed), or None when nothing was before it."""
        async with self._db.write() as conn:
            head_row = (await conn.execute(select(audit_chain.c.seq).with_for_update())).one()
            found = (
                await conn.execute(
                    select(audit_events.c.hash).where(audit_events.c.seq == exported.seq)
                )
            ).first()
            if found is None or found[0] != exported.hash:
                raise Conflict(
                    f"the export's last event #{exported.seq} is not in the trail with the "
                    "hash the export holds: it is not an export of this trail"
                )
            first_kept = (
                await conn.execute(
                    select(func.min(audit_events.c.seq)).where(audit_events.c.ts >= before_ms)
                )
            ).scalar()
            cut = head_row.seq if first_kept is None else first_kept - 1
            base = (
                await conn.execute(select(audit_chain.c.base_seq, audit_chain.c.base_hash))
            ).one()
            if cut <= base.base_seq:
                return None
            if cut > exported.seq:
                raise BadRequest(
                    f"events up to #{cut} are before that date but the export ends at "
                    f"#{exported.seq}: export them first (tether audit export)"
                )
            cut_hash = (
                await conn.execute(select(audit_events.c.hash).where(audit_events.c.seq == cut))
            ).scalar_one()
            await conn.execute(delete(audit_events).where(audit_events.c.seq <= cut))
            await conn.execute(audit_chain.update().values(base_seq=cut, base_hash=cut_hash))
        return ChainHead(cut, cut_hash)

    async def verify(self) -> ChainReport:
        """Walk the whole chain up to the head as it was when the walk began (from the
        prune base, when events were pruned)."""
        head = await self.chain_head()
        base = await self.chain_base()
        walker = ChainWalker(base)
        after = base.seq
        while after < head.seq:
            query = (
                select(audit_events)
                .where(audit_events.c.seq > after, audit_events.c.seq <= head.seq)
                .order_by(audit_events.c.seq)
                .limit(VERIFY_PAGE)
            )
            async with self._db.read() as conn:
                rows = [dict(r._mapping) for r in await conn.execute(query)]
            if not rows:
                break
            for row in rows:
                if not walker.feed(row):
                    return walker.report(base.seq + 1, _start_of(base))
            after = rows[-1]["seq"]
        walker.expect_head(head)
        return walker.report(base.seq + 1, _start_of(base))

    async def verify_tail(self, count: int) -> ChainReport:
        """Walk the newest ``count`` events up to the head: each links to the one before and
        matches its hash, and none is missing at the end. Bounded, unlike ``verify``; the
        hashing runs on a worker thread (a thousand events are ~20 ms of CPU)."""
        head = await self.chain_head()
        query = (
            select(audit_events)
            .where(audit_events.c.seq > head.seq - count, audit_events.c.seq <= head.seq)
            .order_by(audit_events.c.seq)
        )
        async with self._db.read() as conn:
            rows = [dict(r._mapping) for r in await conn.execute(query)]
        if not rows:
            walker = ChainWalker(head)
            return walker.report(head.seq + 1, "tail")
        return await asyncio.to_thread(_walk_tail, rows, head)


def _walk_tail(rows: list[dict[str, Any]], head: ChainHead) -> ChainReport:
    first = rows[0]
    walker = ChainWalker(ChainHead(first["seq"] - 1, first["prev_hash"]))
    for row in rows:
        if not walker.feed(row):
            break
    walker.expect_head(head)
    return walker.report(first["seq"], "tail")


def _start_of(base: ChainHead) -> str:
    return "genesis" if base.seq == 0 else "pruned"


_SQLITE_DECISIONS = (
    "SELECT ts, agent_name, source, action, resource, result, code, attributes "
    "FROM audit_events WHERE project_id = ? AND ts >= ? AND ts < ? "
    f"AND result IN ({', '.join('?' * len(DECISION_RESULTS))})"
)


async def _sqlite_pages(
    path: str, project_id: str, since_ms: int, until_ms: int
) -> AsyncIterator[list[Any]]:
    """``decision_rows`` on a SQLite file: a connection of its own, read-only, its pages
    fetched off the event loop (one thread at a time uses it)."""
    try:
        conn = await asyncio.to_thread(
            sqlite3.connect,
            f"{Path(path).resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=5,
            check_same_thread=False,
        )
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"the database is unreachable: {exc}") from exc
    try:
        cursor = await asyncio.to_thread(
            conn.execute, _SQLITE_DECISIONS, (project_id, since_ms, until_ms, *DECISION_RESULTS)
        )
        while rows := await asyncio.to_thread(cursor.fetchmany, DECISION_PAGE):
            yield rows
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"the database is unreachable: {exc}") from exc
    finally:
        conn.close()
