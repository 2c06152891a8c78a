"""Human approvals: requested by the pipeline, decided by an operator, used once.

A request and its webhook announcements commit together; deciding and using are
conditional updates, so two replicas (or two clicks) can never both win, and a grant
is spent by exactly one action.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, fields, replace
from typing import Any

import orjson
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tether.clock import new_id, now_ms
from tether.errors import Conflict, NotFound
from tether.redaction.text import redact_text
from tether.store.alerts import enqueue_deliveries
from tether.store.changes import record_change, record_change_on_writer
from tether.store.database import Database
from tether.store.plain_sql import PlainStatement
from tether.store.schema import approvals
from tether.store.sqlite_writer import SqliteWriter

__all__ = [
    "APPROVED",
    "DENIED",
    "EXPIRED",
    "FIRST_ITEMS",
    "PENDING",
    "USED",
    "ApprovalRecord",
    "ApprovalRequest",
    "ApprovalSnapshot",
    "ApprovalStore",
    "resource_key",
]

PENDING, APPROVED, DENIED, USED, EXPIRED = "pending", "approved", "denied", "used", "expired"
FIRST_ITEMS = 10
"""How many of a group's resources it names (the count says how many there are)."""
GROUPS_SCANNED = 50
SNAPSHOT_CHUNK = 500
"""Resources a ``snapshot`` asks for in one statement."""


def resource_key(resource: str) -> str:
    return hashlib.sha256(resource.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    project_id: str
    agent_id: str
    session_id: str
    action: str
    resource: str
    reason: str
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ApprovalRecord(ApprovalRequest):
    """A stored request and what became of it."""

    id: str
    state: str
    requested_at: int
    expires_at: int
    """Until a decision: when the request lapses. After approval: when the grant lapses."""
    decided_at: int | None = None
    decided_by: str | None = None
    decision_reason: str | None = None
    used_at: int | None = None
    scope_prefix: str | None = None
    """A group: every resource under this prefix (the approver may narrow it)."""
    item_count: int = 1
    """A group: how many actions joined it while it was pending."""
    max_uses: int | None = None
    """A group: how many actions the grant allows (None: one, the single resource)."""
    uses: int = 0

    @property
    def grouped(self) -> bool:
        return self.scope_prefix is not None

    def covers(self, resource: str) -> bool:
        return self.scope_prefix is not None and resource.startswith(self.scope_prefix)

    def state_at(self, ts: int) -> str:
        if self.state in (PENDING, APPROVED) and self.expires_at <= ts:
            return EXPIRED
        return self.state


def _record(row: Any) -> ApprovalRecord:
    return ApprovalRecord(
        id=row.id,
        project_id=row.project_id,
        agent_id=row.agent_id,
        session_id=row.session_id,
        action=row.action,
        resource=row.resource,
        reason=row.reason,
        attributes=orjson.loads(row.attributes),
        state=row.state,
        requested_at=row.requested_at,
        expires_at=row.expires_at,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        decision_reason=row.decision_reason,
        used_at=row.used_at,
        scope_prefix=row.scope_prefix,
        item_count=row.item_count,
        max_uses=row.max_uses,
        uses=row.uses,
    )


_NEWEST_FIRST = (approvals.c.requested_at.desc(), approvals.c.id.desc())
# The statements a refused or approved action runs, built once: building and keying them
# on every call cost more than running them (bulk deletions go through them per object).
_LATEST = (
    select(approvals)
    .where(
        (approvals.c.session_id == bindparam("p_session"))
        & (approvals.c.action == bindparam("p_action"))
        & (approvals.c.resource_key == bindparam("p_resource_key"))
    )
    .order_by(*_NEWEST_FIRST)
    .limit(1)
)
_LATEST_MANY = (
    select(approvals)
    .where(
        (approvals.c.session_id == bindparam("p_session"))
        & (approvals.c.action == bindparam("p_action"))
        & approvals.c.resource_key.in_(bindparam("p_resource_keys", expanding=True))
    )
    .order_by(*_NEWEST_FIRST)
)
_GROUPS = (
    select(approvals)
    .where(
        (approvals.c.session_id == bindparam("p_session"))
        & (approvals.c.action == bindparam("p_action"))
        & approvals.c.scope_prefix.is_not(None)
    )
    .order_by(*_NEWEST_FIRST)
    .limit(GROUPS_SCANNED)
)
_PENDING_GROUP = (
    (approvals.c.id == bindparam("p_id"))
    & (approvals.c.state == PENDING)
    & (approvals.c.expires_at > bindparam("p_ts"))
)
_JOIN = update(approvals).where(_PENDING_GROUP).values(item_count=approvals.c.item_count + 1)
_ATTRIBUTES = select(approvals.c.attributes).where(approvals.c.id == bindparam("p_id"))
_NAME_ITEM = (
    update(approvals)
    .where((approvals.c.id == bindparam("p_id")) & (approvals.c.attributes == bindparam("p_old")))
    .values(attributes=bindparam("p_new"))
)
_LIVE_GRANT = (
    (approvals.c.id == bindparam("p_id"))
    & (approvals.c.state == APPROVED)
    & (approvals.c.expires_at > bindparam("p_ts"))
)
_USE_ONE = (
    update(approvals)
    .where(_LIVE_GRANT & (approvals.c.uses < func.coalesce(approvals.c.max_uses, 1)))
    .values(uses=approvals.c.uses + 1)
)
_SPENT = (
    update(approvals)
    .where(_LIVE_GRANT & (approvals.c.uses >= func.coalesce(approvals.c.max_uses, 1)))
    .values(state=USED, used_at=bindparam("p_ts"))
)
_USE_SINGLE = update(approvals).where(_LIVE_GRANT).values(state=USED, used_at=bindparam("p_ts"))
_JOIN_PLAIN, _ATTRIBUTES_PLAIN, _NAME_ITEM_PLAIN = map(
    PlainStatement.of, (_JOIN, _ATTRIBUTES, _NAME_ITEM)
)
_USE_ONE_PLAIN, _SPENT_PLAIN, _USE_SINGLE_PLAIN = map(
    PlainStatement.of, (_USE_ONE, _SPENT, _USE_SINGLE)
)


def _with_item(attributes_json: str, shown: str) -> str | None:
    """The group's attributes naming ``shown`` among its first items; None when it is
    named already or the first items are all named."""
    attributes = orjson.loads(attributes_json)
    items = attributes.setdefault("items", [])
    if len(items) >= FIRST_ITEMS or shown in items:
        return None
    items.append(shown)
    return orjson.dumps(attributes).decode()


def _run(
    conn: sqlite3.Connection, statement: PlainStatement, params: dict[str, Any]
) -> sqlite3.Cursor:
    return conn.execute(statement.sql, statement.values(params))


def _join_on_writer(conn: sqlite3.Connection, group_id: str, shown: str, ts: int) -> bool:
    if _run(conn, _JOIN_PLAIN, {"p_id": group_id, "p_ts": ts}).rowcount != 1:
        return False
    (old,) = _run(conn, _ATTRIBUTES_PLAIN, {"p_id": group_id}).fetchone()
    new = _with_item(old, shown)
    if new is not None:
        _run(conn, _NAME_ITEM_PLAIN, {"p_id": group_id, "p_old": old, "p_new": new})
    record_change_on_writer(conn, "approval", group_id)
    return True


def _use_on_writer(conn: sqlite3.Connection, group_id: str, grouped: bool, ts: int) -> bool:
    params = {"p_id": group_id, "p_ts": ts}
    if _run(conn, _USE_ONE_PLAIN if grouped else _USE_SINGLE_PLAIN, params).rowcount != 1:
        return False
    if grouped:
        _run(conn, _SPENT_PLAIN, params)
    record_change_on_writer(conn, "approval", group_id)
    return True


async def _latest(
    conn: AsyncConnection, session_id: str, action: str, resource: str
) -> ApprovalRecord | None:
    params = {"p_session": session_id, "p_action": action, "p_resource_key": resource_key(resource)}
    row = (await conn.execute(_LATEST, params)).first()
    return _record(row) if row else None


async def _group_for(
    conn: AsyncConnection, session_id: str, action: str, resource: str
) -> ApprovalRecord | None:
    rows = await conn.execute(_GROUPS, {"p_session": session_id, "p_action": action})
    return _pick_group([_record(row) for row in rows if resource.startswith(row.scope_prefix)])


def _pick_group(covering: list[ApprovalRecord]) -> ApprovalRecord | None:
    """Of the groups covering a resource (newest first), a live grant first, even under a
    newer pending group; else the newest."""
    ts = now_ms()
    for group in covering:
        if group.state_at(ts) == APPROVED and group.uses < (group.max_uses or 1):
            return group
    return covering[0] if covering else None


@dataclass(frozen=True, slots=True)
class ApprovalSnapshot:
    """The approvals of one action in one session on many resources, read at once: what a
    call of many actions (a ``DeleteObjects``' keys) looks ahead with, instead of two
    reads a resource. A look only: whatever acts on an approval reads it again."""

    latest_by_key: dict[str, ApprovalRecord]
    groups: list[ApprovalRecord]

    def latest(self, resource: str) -> ApprovalRecord | None:
        """As ``ApprovalStore.latest`` answered when the snapshot was read."""
        return self.latest_by_key.get(resource_key(resource))

    def group_for(self, resource: str) -> ApprovalRecord | None:
        """As ``ApprovalStore.group_for`` answered when the snapshot was read."""
        return _pick_group([group for group in self.groups if group.covers(resource)])


class ApprovalStore:
    """On SQLite, joining a group and spending a grant (once per action of a bulk deletion)
    go through the writer thread in plain SQL: one hand-off and a share of a group commit
    instead of an ORM transaction of five round trips (2.7 ms of event-loop CPU each)."""

    def __init__(self, db: Database, writer: SqliteWriter | None = None) -> None:
        self._db = db
        self._writer = writer

    async def latest(self, session_id: str, action: str, resource: str) -> ApprovalRecord | None:
        """The newest approval for exactly this action on this resource in this session."""
        async with self._db.read() as conn:
            return await _latest(conn, session_id, action, resource)

    async def group_for(self, session_id: str, action: str, resource: str) -> ApprovalRecord | None:
        """The group of this action in this session whose prefix covers ``resource``: a
        live grant if there is one, else the newest (pending, denied or spent)."""
        async with self._db.read() as conn:
            return await _group_for(conn, session_id, action, resource)

    async def latest_and_group(
        self, session_id: str, action: str, resource: str
    ) -> tuple[ApprovalRecord | None, ApprovalRecord | None]:
        """``latest`` and ``group_for`` on one connection: a bulk deletion asks both for
        every object, and a connection checked out costs more than either query."""
        async with self._db.read() as conn:
            return (
                await _latest(conn, session_id, action, resource),
                await _group_for(conn, session_id, action, resource),
            )

    async def snapshot(
        self, session_id: str, action: str, resources: list[str]
    ) -> ApprovalSnapshot:
        """``latest`` and ``group_for`` of ``action`` on every one of ``resources`` in this
        session, on one connection in a few statements."""
        keys = list(dict.fromkeys(map(resource_key, resources)))
        latest: dict[str, ApprovalRecord] = {}
        async with self._db.read() as conn:
            for at in range(0, len(keys), SNAPSHOT_CHUNK):
                params = {
                    "p_session": session_id,
                    "p_action": action,
                    "p_resource_keys": keys[at : at + SNAPSHOT_CHUNK],
                }
                for row in await conn.execute(_LATEST_MANY, params):
                    if row.resource_key not in latest:
                        latest[row.resource_key] = _record(row)
            rows = await conn.execute(_GROUPS, {"p_session": session_id, "p_action": action})
            groups = [_record(row) for row in rows]
        return ApprovalSnapshot(latest, groups)

    async def join(self, group: ApprovalRecord, resource: str) -> bool:
        """Count one more action into a pending group (and name it among the first few);
        False when the group was decided or lapsed meanwhile."""
        ts = now_ms()
        shown = redact_text(resource)
        if self._writer is not None:
            return await self._writer.transaction(
                lambda conn: _join_on_writer(conn, group.id, shown, ts)
            )
        async with self._db.write() as conn:
            result = await conn.execute(_JOIN, {"p_id": group.id, "p_ts": ts})
            if result.rowcount != 1:
                return False
            row = (await conn.execute(_ATTRIBUTES, {"p_id": group.id})).one()
            new = _with_item(row.attributes, shown)
            if new is not None:
                await conn.execute(
                    _NAME_ITEM, {"p_id": group.id, "p_old": row.attributes, "p_new": new}
                )
            await record_change(conn, "approval", group.id)
        return True

    async def request(
        self,
        ask: ApprovalRequest,
        ttl_ms: int,
        announcement: dict[str, Any],
        scope_prefix: str | None = None,
    ) -> ApprovalRecord:
        """A new pending approval, announced on the project's webhooks in the same commit.
        Its resource is stored with secrets blanked; it is found by the hash of the whole.
        With ``scope_prefix`` it is a group: later actions under the prefix join it."""
        ts = now_ms()
        exact_key = resource_key(ask.resource)
        attributes = dict(ask.attributes)
        if scope_prefix is not None:
            attributes["items"] = [redact_text(ask.resource)]
        record = ApprovalRecord(
            **{
                f.name: getattr(ask, f.name)
                for f in fields(ApprovalRequest)
                if f.name not in ("resource", "attributes")
            },
            resource=redact_text(ask.resource if scope_prefix is None else f"{scope_prefix}*"),
            attributes=attributes,
            id=f"apr_{new_id()}",
            state=PENDING,
            requested_at=ts,
            expires_at=ts + ttl_ms,
            scope_prefix=scope_prefix,
        )
        async with self._db.write() as conn:
            await conn.execute(
                insert(approvals).values(
                    id=record.id,
                    project_id=record.project_id,
                    agent_id=record.agent_id,
                    session_id=record.session_id,
                    action=record.action,
                    resource=record.resource,
                    resource_key=exact_key,
                    reason=record.reason,
                    attributes=orjson.dumps(record.attributes).decode(),
                    state=PENDING,
                    requested_at=ts,
                    expires_at=record.expires_at,
                    scope_prefix=scope_prefix,
                )
            )
            payload = {**announcement, "approval_id": record.id, "expires_at": record.expires_at}
            if scope_prefix is not None:
                payload["prefix"] = redact_text(scope_prefix)
            await enqueue_deliveries(conn, record.project_id, "approval.requested", payload, ts)
            await record_change(conn, "approval", record.id)
        return record

    async def get(self, approval_id: str) -> ApprovalRecord:
        async with self._db.read() as conn:
            row = (
                await conn.execute(select(approvals).where(approvals.c.id == approval_id))
            ).first()
        if row is None:
            raise NotFound(f"no approval {approval_id!r}; `tether approvals list` shows them")
        return _record(row)

    async def find(
        self, project_id: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[ApprovalRecord]:
        """``state`` is as of now: an approval past its expiry lists as ``expired``."""
        ts = now_ms()
        query = select(approvals).order_by(approvals.c.requested_at.desc()).limit(limit)
        if project_id is not None:
            query = query.where(approvals.c.project_id == project_id)
        if state in (PENDING, APPROVED):
            query = query.where(approvals.c.state == state, approvals.c.expires_at > ts)
        elif state == EXPIRED:
            query = query.where(
                (approvals.c.state == EXPIRED)
                | (approvals.c.state.in_((PENDING, APPROVED)) & (approvals.c.expires_at <= ts))
            )
        elif state is not None:
            query = query.where(approvals.c.state == state)
        async with self._db.read() as conn:
            rows = await conn.execute(query)
        return [_record(r) for r in rows]

    async def decide(
        self,
        approval_id: str,
        approve: bool,
        by: str,
        reason: str,
        grant_ttl_ms: int,
        max_uses: int | None = None,
        scope_prefix: str | None = None,
    ) -> ApprovalRecord:
        """Approve or deny a pending approval; anything else is a 409 that says why.
        A group's grant is ``max_uses`` actions under ``scope_prefix`` (checked narrower
        than asked by the caller)."""
        ts = now_ms()
        values: dict[str, Any] = {
            "state": APPROVED if approve else DENIED,
            "decided_at": ts,
            "decided_by": by,
            "decision_reason": reason,
        }
        if approve:
            values["expires_at"] = ts + grant_ttl_ms
            if max_uses is not None:
                values["max_uses"] = max_uses
            if scope_prefix is not None:
                values["scope_prefix"] = scope_prefix
        pending = (
            (approvals.c.id == approval_id)
            & (approvals.c.state == PENDING)
            & (approvals.c.expires_at > ts)
        )
        async with self._db.write() as conn:
            result = None
            if scope_prefix is None:
                # A group of one is decided as that one action on that one resource, so
                # approving `rm build` does not grant a deletion of a sibling.
                row = (
                    await conn.execute(
                        select(approvals.c.attributes).where(
                            pending
                            & (approvals.c.item_count == 1)
                            & approvals.c.scope_prefix.is_not(None)
                        )
                    )
                ).first()
                items = orjson.loads(row.attributes).get("items") if row else None
                if items:
                    result = await conn.execute(
                        update(approvals)
                        .where(pending & (approvals.c.item_count == 1))
                        .values(**values, scope_prefix=None, max_uses=None, resource=items[0])
                    )
            if result is None or result.rowcount != 1:
                # Approved as one action, a group that grew meanwhile is not granted whole:
                # its prefix would let one use reach any action under it (denied, it is).
                alone = (
                    pending & approvals.c.scope_prefix.is_(None)
                    if approve and scope_prefix is None
                    else pending
                )
                result = await conn.execute(update(approvals).where(alone).values(**values))
            if result.rowcount == 1:
                await record_change(conn, "approval", approval_id)
            # Read in the deciding transaction: a waiting agent may use the grant the moment
            # it commits, and the decision is what the decider is told, not what came after.
            row = (
                await conn.execute(select(approvals).where(approvals.c.id == approval_id))
            ).first()
        if row is None:
            raise NotFound(f"no approval {approval_id!r}; `tether approvals list` shows them")
        current = _record(row)
        if result.rowcount != 1 and approve and current.state_at(ts) == PENDING:
            raise Conflict(
                f"approval {approval_id} now covers {current.item_count} actions under "
                f"{current.scope_prefix}; look at it again and decide them together "
                "(or name a narrower prefix)"
            )
        if result.rowcount != 1:
            state = current.state_at(ts)
            by_whom = f" by {current.decided_by}" if current.decided_by else ""
            raise Conflict(f"approval {approval_id} is already {state}{by_whom}; nothing changed")
        return current

    async def expire_due(self, limit: int = 200) -> list[ApprovalRecord]:
        """Mark lapsed approvals ``expired``; each is returned by exactly one caller, so
        one replica records its expiry."""
        ts = now_ms()
        lapsed = (approvals.c.state.in_((PENDING, APPROVED))) & (approvals.c.expires_at <= ts)
        async with self._db.read() as conn:
            rows = (await conn.execute(select(approvals).where(lapsed).limit(limit))).all()
        expired = []
        for row in rows:
            async with self._db.write() as conn:
                result = await conn.execute(
                    update(approvals)
                    .where(approvals.c.id == row.id, lapsed)
                    .values(state=EXPIRED, decided_at=ts)
                )
                if result.rowcount == 1:
                    await record_change(conn, "approval", row.id)
            if result.rowcount == 1:
                expired.append(_record(row))
        return expired

    async def use(self, approval: ApprovalRecord) -> ApprovalRecord | None:
        """Spend an approved grant; None when another action spent it first or it lapsed.
        A group's grant is spent one action at a time and is ``used`` after the last."""
        ts = now_ms()
        if self._writer is not None:
            grouped = approval.grouped
            used = await self._writer.transaction(
                lambda conn: _use_on_writer(conn, approval.id, grouped, ts)
            )
            if not used:
                return None
            if grouped:
                return replace(approval, uses=approval.uses + 1)
            return replace(approval, state=USED, used_at=ts)
        if approval.grouped:
            return await self._use_one_of(approval)
        async with self._db.write() as conn:
            result = await conn.execute(_USE_SINGLE, {"p_id": approval.id, "p_ts": ts})
            if result.rowcount == 1:
                await record_change(conn, "approval", approval.id)
        return replace(approval, state=USED, used_at=ts) if result.rowcount == 1 else None

    async def _use_one_of(self, group: ApprovalRecord) -> ApprovalRecord | None:
        params = {"p_id": group.id, "p_ts": now_ms()}
        async with self._db.write() as conn:
            result = await conn.execute(_USE_ONE, params)
            if result.rowcount != 1:
                return None
            await conn.execute(_SPENT, params)
            await record_change(conn, "approval", group.id)
        return replace(group, uses=group.uses + 1)

    async def give_back(self, approval_id: str) -> bool:
        """Return one use of a grant spent by an action that was then not carried out (its
        call was refused as a whole, or never left tether): a group's count goes down by
        one, a single grant is ``approved`` again; either lapses when it would have.
        False when there was no use to give back."""
        spent = (approvals.c.id == approval_id) & approvals.c.state.in_((APPROVED, USED))
        back = {"state": APPROVED, "used_at": None}
        async with self._db.write() as conn:
            result = await conn.execute(
                update(approvals)
                .where(spent & approvals.c.scope_prefix.is_not(None) & (approvals.c.uses > 0))
                .values(uses=approvals.c.uses - 1, **back)
            )
            if result.rowcount != 1:
                result = await conn.execute(
                    update(approvals)
                    .where(spent & approvals.c.scope_prefix.is_(None) & (approvals.c.state == USED))
                    .values(**back)
                )
            if result.rowcount == 1:
                await record_change(conn, "approval", approval_id)
        return bool(result.rowcount == 1)
