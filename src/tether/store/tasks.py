"""Tasks, their batches and checkpoints.

Claiming a batch and completing one are conditional writes, so two sessions (or two
replicas) can never hold the same batch, and a batch is completed only by the session
that holds it. A failed verification moves the task to ``needs_attention`` in the same
transaction, so no batch is handed out after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from tether.clock import new_id, now_ms
from tether.errors import Conflict, NotFound, TetherError
from tether.store.database import Database
from tether.store.schema import task_batches, task_checkpoints, tasks

__all__ = [
    "ACTIVE",
    "CANCELLED",
    "COMPLETED",
    "NEEDS_ATTENTION",
    "BatchRecord",
    "CheckpointRecord",
    "TaskRecord",
    "TaskStore",
]

ACTIVE, NEEDS_ATTENTION = "active", "needs_attention"
COMPLETED, CANCELLED = "completed", "cancelled"
OPEN_STATES = (ACTIVE, NEEDS_ATTENTION)
CLAIMED, VERIFIED, FAILED = "claimed", "verified", "failed"


@dataclass(frozen=True, slots=True)
class TaskRecord:
    id: str
    project_id: str
    agent_id: str | None
    session_id: str | None
    name: str
    definition: str
    batch_count: int
    state: str
    state_by: str | None
    state_reason: str | None
    created_at: int
    created_by: str
    updated_at: int


@dataclass(frozen=True, slots=True)
class BatchRecord:
    task_id: str
    number: int
    state: str
    session_id: str
    claimed_at: int
    claimed_until: int
    completed_at: int | None
    results: Any
    verification: Any


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    id: str
    task_id: str
    session_id: str | None
    agent_id: str | None
    created_at: int
    body: dict[str, Any]


def _task(row: Any) -> TaskRecord:
    return TaskRecord(**{name: getattr(row, name) for name in TaskRecord.__slots__})


def _batch(row: Any) -> BatchRecord:
    return BatchRecord(
        task_id=row.task_id,
        number=row.number,
        state=row.state,
        session_id=row.session_id,
        claimed_at=row.claimed_at,
        claimed_until=row.claimed_until,
        completed_at=row.completed_at,
        results=orjson.loads(row.results) if row.results else None,
        verification=orjson.loads(row.verification) if row.verification else None,
    )


def _checkpoint(row: Any) -> CheckpointRecord:
    return CheckpointRecord(
        row.id, row.task_id, row.session_id, row.agent_id, row.created_at, orjson.loads(row.body)
    )


class TaskNotActive(TetherError):
    code = "task_not_active"


class BatchNotClaimed(TetherError):
    code = "batch_not_claimed"


async def _task_row(conn: AsyncConnection, task_id: str) -> TaskRecord:
    row = (await conn.execute(select(tasks).where(tasks.c.id == task_id))).first()
    if row is None:
        raise NotFound(f"no task {task_id!r}")
    return _task(row)


async def _touch(conn: AsyncConnection, task_id: str, ts: int) -> None:
    """Bump ``updated_at``: caches of the task (its rendered block) know to refresh."""
    await conn.execute(update(tasks).where(tasks.c.id == task_id).values(updated_at=ts))


class TaskStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self,
        project_id: str,
        agent_id: str | None,
        session_id: str | None,
        name: str,
        definition: str,
        batch_count: int,
        created_by: str,
    ) -> TaskRecord:
        ts = now_ms()
        values = {
            "id": new_id(),
            "project_id": project_id,
            "agent_id": agent_id,
            "session_id": session_id,
            "name": name,
            "definition": definition,
            "batch_count": batch_count,
            "state": ACTIVE,
            "state_by": created_by,
            "state_reason": None,
            "created_at": ts,
            "created_by": created_by,
            "updated_at": ts,
        }
        async with self._db.write() as conn:
            await conn.execute(insert(tasks).values(**values))
        return TaskRecord(**values)  # type: ignore[arg-type]

    async def get(self, task_id: str) -> TaskRecord:
        async with self._db.read() as conn:
            return await _task_row(conn, task_id)

    async def find(
        self, project_id: str | None, agent_id: str | None, state: str | None, limit: int
    ) -> list[TaskRecord]:
        query = select(tasks).order_by(tasks.c.created_at.desc()).limit(limit)
        if project_id is not None:
            query = query.where(tasks.c.project_id == project_id)
        if agent_id is not None:
            query = query.where(tasks.c.agent_id == agent_id)
        if state is not None:
            query = query.where(tasks.c.state == state)
        async with self._db.read() as conn:
            return [_task(row) for row in (await conn.execute(query)).all()]

    async def for_session(
        self, session_id: str, agent_id: str, project_id: str
    ) -> TaskRecord | None:
        """The open task attached to this session; else the oldest open task waiting for
        this agent's (or, with no agent named, any of the project's agents') next session,
        which is attached to this one now."""
        attached_here = await self._newest_open(
            agent_id, project_id, tasks.c.session_id == session_id
        )
        if attached_here is not None:
            return attached_here
        waiting = (
            select(tasks.c.id)
            .where(*_open_for(agent_id, project_id), tasks.c.session_id.is_(None))
            .order_by(tasks.c.created_at)
            .limit(1)
        )
        for _ in range(3):
            async with self._db.write() as conn:
                found = (await conn.execute(waiting)).first()
                if found is None:
                    return None
                attached = await conn.execute(
                    update(tasks)
                    .where(tasks.c.id == found.id, tasks.c.session_id.is_(None))
                    .values(session_id=session_id, updated_at=now_ms())
                )
                if attached.rowcount == 1:
                    return await _task_row(conn, found.id)
        return None

    async def current_for_agent(self, agent_id: str, project_id: str) -> TaskRecord | None:
        """The agent's newest open task (for callers that name no task and no session)."""
        return await self._newest_open(agent_id, project_id)

    async def _newest_open(
        self, agent_id: str, project_id: str, *also: ColumnElement[bool]
    ) -> TaskRecord | None:
        query = (
            select(tasks)
            .where(*_open_for(agent_id, project_id), *also)
            .order_by(tasks.c.created_at.desc())
            .limit(1)
        )
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        return _task(row) if row else None

    async def attach(self, task_id: str, session_id: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id, tasks.c.session_id.is_(None))
                .values(session_id=session_id, updated_at=now_ms())
            )

    async def set_state(
        self, task_id: str, state: str, by: str, reason: str, from_states: tuple[str, ...]
    ) -> TaskRecord:
        """Moves the task only from ``from_states`` (409 otherwise); resuming clears the
        failed batches so they are handed out again."""
        async with self._db.write() as conn:
            task = await _task_row(conn, task_id)
            changed = await conn.execute(
                update(tasks)
                .where(tasks.c.id == task_id, tasks.c.state.in_(from_states))
                .values(state=state, state_by=by, state_reason=reason, updated_at=now_ms())
            )
            if changed.rowcount != 1:
                raise Conflict(
                    f"task {task_id} is {task.state}; this needs it to be "
                    f"{' or '.join(from_states)}"
                )
            if state == ACTIVE:
                await conn.execute(
                    delete(task_batches).where(
                        task_batches.c.task_id == task_id, task_batches.c.state == FAILED
                    )
                )
            return await _task_row(conn, task_id)

    async def add_checkpoint(
        self, task_id: str, session_id: str | None, agent_id: str, body: dict[str, Any]
    ) -> CheckpointRecord:
        record = CheckpointRecord(new_id(), task_id, session_id, agent_id, now_ms(), body)
        async with self._db.write() as conn:
            await conn.execute(
                insert(task_checkpoints).values(
                    id=record.id,
                    task_id=task_id,
                    session_id=session_id,
                    agent_id=agent_id,
                    created_at=record.created_at,
                    body=orjson.dumps(body).decode(),
                )
            )
            await _touch(conn, task_id, record.created_at)
        return record

    async def checkpoints(self, task_id: str, limit: int = 100) -> list[CheckpointRecord]:
        """Newest first."""
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(task_checkpoints)
                    .where(task_checkpoints.c.task_id == task_id)
                    .order_by(task_checkpoints.c.created_at.desc(), task_checkpoints.c.id.desc())
                    .limit(limit)
                )
            ).all()
        return [_checkpoint(row) for row in rows]

    async def batches(self, task_id: str) -> list[BatchRecord]:
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(task_batches)
                    .where(task_batches.c.task_id == task_id)
                    .order_by(task_batches.c.number)
                )
            ).all()
        return [_batch(row) for row in rows]

    async def open_claims(self, session_id: str) -> list[BatchRecord]:
        """Batches this session holds and has not completed (claim lapsed or not)."""
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    select(task_batches)
                    .join(tasks, tasks.c.id == task_batches.c.task_id)
                    .where(
                        task_batches.c.session_id == session_id,
                        task_batches.c.state == CLAIMED,
                        tasks.c.state.in_(OPEN_STATES),
                    )
                )
            ).all()
        return [_batch(row) for row in rows]

    async def claim_next(
        self, task_id: str, session_id: str, claim_ms: int
    ) -> tuple[TaskRecord, BatchRecord | None]:
        """The batch this session already holds, else the lowest batch neither verified
        nor held by a live claim; None when there is none left (the task is then
        completed if every batch is verified). Raises ``TaskNotActive`` unless active."""
        for _ in range(5):
            try:
                return await self._claim_once(task_id, session_id, claim_ms)
            except Conflict:
                continue
        raise Conflict("other sessions kept claiming the same batch; try again")

    async def _claim_once(
        self, task_id: str, session_id: str, claim_ms: int
    ) -> tuple[TaskRecord, BatchRecord | None]:
        ts = now_ms()
        async with self._db.write() as conn:
            task = await _task_row(conn, task_id)
            if task.state == COMPLETED:
                return task, None
            if task.state != ACTIVE:
                raise TaskNotActive(_not_active(task))
            rows = [
                _batch(row)
                for row in (
                    await conn.execute(
                        select(task_batches).where(task_batches.c.task_id == task_id)
                    )
                ).all()
            ]
            mine = [b for b in rows if b.state == CLAIMED and b.session_id == session_id]
            if mine:
                return task, min(mine, key=lambda b: b.number)
            taken = {
                b.number
                for b in rows
                if b.state == VERIFIED or (b.state == CLAIMED and b.claimed_until > ts)
            }
            number = next((n for n in range(task.batch_count) if n not in taken), None)
            if number is None:
                if sum(1 for b in rows if b.state == VERIFIED) == task.batch_count:
                    await conn.execute(
                        update(tasks)
                        .where(tasks.c.id == task_id, tasks.c.state == ACTIVE)
                        .values(
                            state=COMPLETED,
                            state_by="tether",
                            state_reason="every batch verified",
                            updated_at=ts,
                        )
                    )
                    task = await _task_row(conn, task_id)
                return task, None
            claim = {
                "state": CLAIMED,
                "session_id": session_id,
                "claimed_at": ts,
                "claimed_until": ts + claim_ms,
                "completed_at": None,
                "results": None,
                "verification": None,
            }
            if any(b.number == number for b in rows):
                done = await conn.execute(
                    update(task_batches)
                    .where(
                        task_batches.c.task_id == task_id,
                        task_batches.c.number == number,
                        task_batches.c.state == CLAIMED,
                        task_batches.c.claimed_until <= ts,
                    )
                    .values(**claim)
                )
                if done.rowcount != 1:
                    raise Conflict("lost the race for this batch")
            else:
                await conn.execute(
                    insert(task_batches).values(task_id=task_id, number=number, **claim)
                )
            row = (
                await conn.execute(
                    select(task_batches).where(
                        task_batches.c.task_id == task_id, task_batches.c.number == number
                    )
                )
            ).one()
            return task, _batch(row)

    async def complete(
        self,
        task_id: str,
        number: int,
        session_id: str,
        passed: bool,
        results: Any,
        verification: dict[str, Any],
    ) -> tuple[TaskRecord, BatchRecord]:
        """Verified or failed, only by the session holding the batch; a failure moves the
        task to ``needs_attention`` in the same transaction."""
        ts = now_ms()
        async with self._db.write() as conn:
            task = await _task_row(conn, task_id)
            done = await conn.execute(
                update(task_batches)
                .where(
                    task_batches.c.task_id == task_id,
                    task_batches.c.number == number,
                    task_batches.c.session_id == session_id,
                    task_batches.c.state == CLAIMED,
                )
                .values(
                    state=VERIFIED if passed else FAILED,
                    completed_at=ts,
                    results=orjson.dumps(results).decode(),
                    verification=orjson.dumps(verification).decode(),
                )
            )
            if done.rowcount != 1:
                raise BatchNotClaimed(
                    f"batch {number} of task {task_id} is not held by this session: "
                    "call next_batch and complete the batch it hands out"
                )
            await _touch(conn, task_id, ts)
            if not passed:
                await conn.execute(
                    update(tasks)
                    .where(tasks.c.id == task_id, tasks.c.state == ACTIVE)
                    .values(
                        state=NEEDS_ATTENTION,
                        state_by="tether",
                        state_reason=f"verification of batch {number} failed",
                        updated_at=ts,
                    )
                )
            else:
                verified = (
                    await conn.execute(
                        select(func.count())
                        .select_from(task_batches)
                        .where(
                            and_(
                                task_batches.c.task_id == task_id, task_batches.c.state == VERIFIED
                            )
                        )
                    )
                ).scalar_one()
                if verified == task.batch_count:
                    await conn.execute(
                        update(tasks)
                        .where(tasks.c.id == task_id, tasks.c.state == ACTIVE)
                        .values(
                            state=COMPLETED,
                            state_by="tether",
                            state_reason="every batch verified",
                            updated_at=ts,
                        )
                    )
            row = (
                await conn.execute(
                    select(task_batches).where(
                        task_batches.c.task_id == task_id, task_batches.c.number == number
                    )
                )
            ).one()
            return await _task_row(conn, task_id), _batch(row)


def _not_active(task: TaskRecord) -> str:
    if task.state == NEEDS_ATTENTION:
        return (
            f"task {task.id} needs attention ({task.state_reason}); no batch is handed out until "
            f"an operator runs 'tether tasks resume {task.id}'"
        )
    return f"task {task.id} is {task.state}; no batch is handed out"


def _open_for(agent_id: str, project_id: str) -> tuple[ColumnElement[bool], ...]:
    """Open tasks of the project that this agent may work on (its own, or anyone's)."""
    return (
        tasks.c.project_id == project_id,
        tasks.c.state.in_(OPEN_STATES),
        or_(tasks.c.agent_id == agent_id, tasks.c.agent_id.is_(None)),
    )
