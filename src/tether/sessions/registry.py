"""Sessions as the hot path sees them: cached in memory, created on first sight.

Activity counters are batched and flushed about once a second; they are bookkeeping,
while the decisions themselves are durable in the audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime

from tether.audit.appender import Row, append_linked
from tether.clock import now_ms
from tether.errors import TetherError
from tether.periodic import PeriodicFlush
from tether.records.fleet import ActivityDelta, SessionRecord, SessionState
from tether.sessions.conversations import (
    Conversations,
    LocalConversations,
    new_session_id,
)
from tether.store.changes import Change
from tether.store.pending import PendingWrite
from tether.store.sessions import SessionStore, Transition
from tether.store.spend import SpendKey, SpendStore

__all__ = ["SessionRegistry"]


CACHE_SIZE = 100_000
FLUSH_SECONDS = 1.0
READ_BACK_TRIES = 3
DAY_MS = 86_400_000


@functools.lru_cache(maxsize=4)
def _utc_day(day: int) -> str:
    return datetime.fromtimestamp(day * DAY_MS / 1000, tz=UTC).strftime("%Y-%m-%d")


class SessionRegistry:
    def __init__(
        self,
        store: SessionStore,
        spend: SpendStore,
        conversations: Conversations | None = None,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self._store = store
        self._spend_store = spend
        self._cache: OrderedDict[str, SessionRecord] = OrderedDict()
        self._cache_size = cache_size
        self._conversations = conversations or LocalConversations(cache_size)
        self._activity: dict[str, ActivityDelta] = {}
        self._spend: dict[SpendKey, ActivityDelta] = {}
        self._flusher = PeriodicFlush("session activity", self.flush, FLUSH_SECONDS)
        self._unwritten: dict[str, PendingWrite[None]] = {}
        """New sessions whose rows wait for the writer's next commit (``open_new``)."""
        self._state_changes = 0
        """State changes made here (``set_state``, ``transition``) or read from the change
        feed (``apply``) so far: a read of the store that one overtook is read again
        (``_read_back``)."""

    async def open(self, session_id: str, agent_id: str, project_id: str) -> SessionRecord:
        """The session, created for this agent if it does not exist yet."""
        session = self._cache.get(session_id)
        if session is None:
            changes = self._state_changes
            session = await self._store.get_or_create(session_id, agent_id, project_id)
            if self._state_changes != changes:
                session = await self._read_back(session_id) or session
            self._remember(session)
        else:
            self._cache.move_to_end(session_id)
        if session.agent_id == agent_id:
            await self._conversations.note_latest(agent_id, session.id)
        return session

    async def open_new(self, session_id: str, agent_id: str, project_id: str) -> SessionRecord:
        """A session this process has just made the id of (no one else can hold it yet).
        Its row is not awaited here: on SQLite it joins the request's next write (the
        budget hold, often), one commit and one hand-off fewer on a call that starts a
        conversation; on PostgreSQL it is written beside the budget hold, one round trip
        less to wait for. Whoever acts on the session must first await ``unwritten`` (the
        pipeline does, before a decision stands): a row that could not be written refuses
        the call, and the session is forgotten so its next call tries again."""
        queued = self._store.create_queued(session_id, agent_id, project_id)
        if queued is None:
            return await self.open(session_id, agent_id, project_id)
        session, written = queued
        self._unwritten[session_id] = written
        written.add_done_callback(lambda done: self._written(session_id, done))
        self._remember(session)
        await self._conversations.note_latest(agent_id, session.id)
        return session

    def _written(self, session_id: str, done: asyncio.Future[object]) -> None:
        self._unwritten.pop(session_id, None)
        if done.cancelled() or done.exception() is not None:
            self._cache.pop(session_id, None)

    def unwritten(self, session_id: str) -> PendingWrite[None] | None:
        """The pending write of a new session's row (``open_new``), None once committed."""
        return self._unwritten.get(session_id)

    async def latest_session(self, agent_id: str) -> str | None:
        """The session this agent used last, if it was active in the last
        ``CONVERSATION_IDLE_MS`` (callers that name no session join it, e.g. AWS calls)."""
        return await self._conversations.latest(agent_id)

    async def conversation_session(self, agent_id: str, conversation: str) -> tuple[str, bool]:
        """The session of an agent's conversation that names none (``Conversations``:
        in this process, or in Redis for a fleet), and whether it starts with this call
        (its id made here: ``open_new`` may create it)."""
        proposed = new_session_id()
        session_id = await self._conversations.session_of(agent_id, conversation, proposed)
        return session_id, session_id == proposed

    async def set_state(
        self, session_id: str, state: SessionState, by: str, reason: str
    ) -> SessionRecord | None:
        """Record the state and see it here at once (the session as changed, None if there
        is none); other replicas see it through the change feed."""
        await self._row_written(session_id)
        changed = await self._store.set_state(session_id, state, by, reason)
        self._state_changes += 1
        self._hold(session_id, changed)
        return changed

    async def transition(
        self,
        session_id: str,
        state: SessionState,
        allowed_from: set[SessionState],
        by: str,
        reason: str,
        audit_rows: Sequence[Row] = (),
    ) -> Transition | None:
        """``SessionStore.transition``, seen here at once; other replicas see it through
        the change feed."""

        def audit(conn: sqlite3.Connection) -> None:
            append_linked(conn, audit_rows)

        await self._row_written(session_id)
        done = await self._store.transition(
            session_id, state, allowed_from, by, reason, audit if audit_rows else None
        )
        self._state_changes += 1
        self._hold(session_id, done.after if done is not None else None)
        return done

    def _hold(self, session_id: str, changed: SessionRecord | None) -> None:
        """A session as changed: held again if it was, and held anew if it is stopped (a
        stream on it may have outlived its place in the cache: the kill switch, which reads
        only memory, must see it stopped to cut that stream)."""
        if changed is None:
            self._cache.pop(session_id, None)
        elif session_id in self._cache:
            self._cache[session_id] = changed
        elif changed.state is not SessionState.ACTIVE:
            self._remember(changed)

    async def _row_written(self, session_id: str) -> None:
        """A state change waits for the session's row while it is still on its way (on
        PostgreSQL it is written beside the request's other work): a change that landed
        first would find no row, and the row would then stand in its first state. A row
        that could not be written leaves nothing to change; the change finds none."""
        unwritten = self._unwritten.get(session_id)
        if unwritten is not None:
            with contextlib.suppress(TetherError):
                await unwritten.result()

    def cached(self, session_id: str) -> SessionRecord | None:
        return self._cache.get(session_id)

    async def current(self, session_id: str) -> SessionRecord | None:
        """The session as held here, or as the store has it (not held for that: a look at
        a session, not a call on it)."""
        return self._cache.get(session_id) or await self._store.get(session_id)

    def sizes(self) -> dict[str, int]:
        """How much this registry holds in memory now (the soak benchmark watches it)."""
        return {
            "sessions_cached": len(self._cache),
            "activity_pending": len(self._activity),
            "spend_pending": len(self._spend),
            **self._conversations.sizes(),
        }

    def note_request(self, session_id: str) -> None:
        delta = self._delta(session_id)
        delta.requests += 1
        delta.last_activity_at = now_ms()

    def note_usage(self, session: SessionRecord, usage: ActivityDelta) -> None:
        """Add a priced call to its session and to the day's spend of its agent."""
        self._delta(session.id).merge(usage)
        key = SpendKey(_utc_day(now_ms() // DAY_MS), session.project_id, session.agent_id)
        daily = self._spend.get(key)
        if daily is None:
            daily = self._spend[key] = ActivityDelta()
        daily.merge(usage)
        daily.requests += 1

    def _delta(self, session_id: str) -> ActivityDelta:
        delta = self._activity.get(session_id)
        if delta is None:
            delta = self._activity[session_id] = ActivityDelta()
        return delta

    async def apply(self, change: Change) -> None:
        """A session another process (or this one) changed is read again: held here as
        changed, or held anew if it is stopped (``_hold``). One forgotten while the read
        was under way stays forgotten: put back, it would hold the cache past its bound
        (its next call reads the store anyway). A session not cached may be on its way in
        (``open``): counted, the change makes that read be done again, so a kill read from
        the feed while the older row was coming back is not lost with it."""
        if change.kind != "session":
            return
        self._state_changes += 1
        held = change.ref in self._cache
        session = await self._read_back(change.ref)
        if held and change.ref not in self._cache:
            return
        self._hold(change.ref, session)

    async def _read_back(self, session_id: str) -> SessionRecord | None:
        """The session as the store has it, read again while a state change made here
        overtook the read: a kill here that lands in the cache while the store is read
        must not be undone by the older row that read brings back (calls on a killed
        session would be allowed until the kill's own change is read). Overtaken every
        time, the state held here stands."""
        for _ in range(READ_BACK_TRIES):
            changes = self._state_changes
            session = await self._store.get(session_id)
            if self._state_changes == changes:
                return session
        return self._cache.get(session_id, session)

    async def warm_up(self) -> None:
        """Compile the flush statement now: its first compilation (tens of ms) would
        otherwise stall the event loop in the middle of serving traffic."""
        await self._store.record_activity({"": ActivityDelta()})

    def start(self) -> None:
        self._flusher.start()

    async def stop(self) -> None:
        await self._flusher.stop()
        await self._conversations.close()

    async def flush(self) -> None:
        """What sessions did since the last flush. A session whose row is still on its way
        keeps its counts for the next flush: written now, they would find no row."""
        activity, self._activity = self._activity, {}
        for session_id in [s for s in activity if s in self._unwritten]:
            self._activity[session_id] = activity.pop(session_id)
        spend, self._spend = self._spend, {}
        try:
            await self._spend_store.add(spend)
        except TetherError:
            for key, delta in spend.items():
                self._spend.setdefault(key, ActivityDelta()).merge(delta)
            for session_id, delta in activity.items():
                self._delta(session_id).merge(delta)
            raise
        try:
            await self._store.record_activity(activity)
        except TetherError:
            for session_id, delta in activity.items():
                self._delta(session_id).merge(delta)
            raise

    def _remember(self, session: SessionRecord) -> None:
        self._cache[session.id] = session
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
