"""Runs the stages in order, records the decision before anyone acts on it, and settles
the outcome afterwards (usage, budgets, the completion record)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Protocol, runtime_checkable

from tether.audit.event import AuditEvent
from tether.audit.log import AuditLog
from tether.errors import AuditEventRejected, TetherError
from tether.logs.request_scope import note_identity
from tether.pipeline.action import Action, Context, Decision, Deny, Pending, Verdict
from tether.pipeline.events import decision_event, observation_event, outcome_events
from tether.pipeline.outcome import Outcome, ToolUse

__all__ = ["Pipeline", "Reviews", "Settles", "Stage"]

log = logging.getLogger(__name__)

SETTLEMENT_BACKLOG = 10_000
RETRY_FIRST_SECONDS = 0.2
RETRY_MAX_SECONDS = 5.0
DRAIN_SECONDS = 30.0
"""At shutdown, how long settlements that keep failing are still retried."""


class Stage(Protocol):
    """One check. Return None for no objection, or a Verdict to stop the pipeline there."""

    async def check(self, action: Action, ctx: Context) -> Verdict | None: ...


@runtime_checkable
class Settles(Protocol):
    """A stage that also acts once the outcome is known (metering, budget settlement)."""

    async def settle(self, action: Action, ctx: Context, outcome: Outcome) -> None: ...


@runtime_checkable
class Reviews(Protocol):
    """A stage that judges what an allowed call produces while it is being delivered: a tool
    call the model asks for, more output than was reserved."""

    async def review(self, action: Action, ctx: Context, tool_use: ToolUse) -> Deny | None: ...


@runtime_checkable
class CoversOutput(Protocol):
    """A stage that must cover output as it streams (budgets)."""

    async def cover_output(self, action: Action, ctx: Context, tokens: int) -> Deny | None: ...


@runtime_checkable
class Observes(Protocol):
    """A stage that learns from what an agent reports it did (a tool's answer)."""

    async def observed(self, action: Action, ctx: Context) -> None: ...


def _evidence(verdict: Verdict | None) -> dict[str, object]:
    if isinstance(verdict, Deny):
        return verdict.evidence
    if isinstance(verdict, Pending):
        return {"approval_id": verdict.approval_id}
    return {}


async def _first_refusal(checks: Iterable[Awaitable[Deny | None]]) -> Deny | None:
    """Fail closed: a stage that cannot judge refuses."""
    for check in checks:
        try:
            verdict = await check
        except TetherError as exc:
            return Deny(exc.code, exc.message)
        except Exception:
            log.exception("a stage failed while judging a call in progress")
            return Deny("internal_error", "tether could not check this call; it was stopped")
        if verdict is not None:
            return verdict
    return None


async def _unwritten_refusal(ctx: Context) -> TetherError | None:
    """Fail closed: what stages started writing (a new session's row) must be committed
    before the call may go on; the error of the first that was not."""
    unwritten, ctx.unwritten = ctx.unwritten, []
    failure: TetherError | None = None
    for write in unwritten:
        try:
            await write.result()
        except TetherError as exc:
            failure = failure or exc
        except Exception as exc:
            log.exception("a write the decision depends on failed")
            failure = failure or TetherError(
                f"tether could not record this call's session ({type(exc).__name__}); "
                "it was refused",
                code="store_unavailable",
            )
    return failure


class Pipeline:
    def __init__(
        self,
        stages: list[Stage],
        audit: AuditLog,
        on_decided: Callable[[str, float], None] | None = None,
    ) -> None:
        """``on_decided(source, seconds)`` is told how long each decision took."""
        self.stages = stages
        self._on_decided = on_decided
        self._settlers = [stage for stage in stages if isinstance(stage, Settles)]
        self._reviewers = [stage for stage in stages if isinstance(stage, Reviews)]
        self._coverers = [stage for stage in stages if isinstance(stage, CoversOutput)]
        self._observers = [stage for stage in stages if isinstance(stage, Observes)]
        self._audit = audit
        self._settling: set[asyncio.Task[None]] = set()
        self._writing: set[asyncio.Future[None]] = set()
        self._room = asyncio.Semaphore(SETTLEMENT_BACKLOG)
        self._give_up_at: float | None = None

    async def _check(self, action: Action, ctx: Context) -> Verdict | None:
        """Fail closed: a stage that cannot check denies."""
        for stage in self.stages:
            try:
                verdict = await stage.check(action, ctx)
            except TetherError as exc:
                verdict = Deny(exc.code, exc.message)
            except Exception:
                log.exception("stage %s failed", type(stage).__name__)
                verdict = Deny("internal_error", "tether could not check this action; denied")
            if verdict is not None:
                return verdict
        return None

    async def preview(self, action: Action) -> Verdict | None:
        """What ``decide`` would answer, with nothing spent, created or recorded (no
        approval used or requested, no budget held): for deciding several actions as one."""
        return await self._check(action, Context(preview=True))

    async def decide(self, action: Action) -> Decision:
        """Raises ``AuditUnavailable`` (503) when the decision could not be recorded;
        nothing may act on it then."""
        started = time.perf_counter()
        ctx = Context()
        verdict = await self._check(action, ctx)
        event = decision_event(action, ctx, verdict)
        try:
            await self._audit.record(event)
        except TetherError as exc:
            await _unwritten_refusal(ctx)  # settled either way: the call is refused
            await self._undo(action, ctx, exc)
            raise
        if (unwritten := await _unwritten_refusal(ctx)) is not None and not isinstance(
            verdict, Deny
        ):
            verdict, event = await self._refuse_unwritten(action, ctx, unwritten, event)
        if self._on_decided is not None:
            self._on_decided(action.source, time.perf_counter() - started)
        return self._decision(action, ctx, event, verdict)

    async def refuse(self, action: Action, refusal: Deny) -> Decision:
        """Record a call its front door refused before the stages could judge it (a body
        it cannot read, tags it could not look up, no upstream credential): the stages
        that say who and which session run (``observes = True``) so the refusal is on the
        record under them, and nothing is spent. Raises ``AuditUnavailable`` when it could
        not be recorded."""
        ctx = Context()
        for stage in self.stages:
            if not getattr(stage, "observes", False):
                continue
            try:
                verdict = await stage.check(action, ctx)
            except TetherError:
                break
            except Exception:
                log.exception("stage %s failed while recording a refusal", type(stage).__name__)
                break
            if verdict is not None:
                break
        await _unwritten_refusal(ctx)  # refused either way; the event names what was found
        event = decision_event(action, ctx, refusal)
        await self._audit.record(event)
        return self._decision(action, ctx, event, refusal)

    @staticmethod
    def _decision(
        action: Action, ctx: Context, event: AuditEvent, verdict: Verdict | None
    ) -> Decision:
        identity = ctx.identity
        note_identity(
            identity.agent.name if identity else None,
            ctx.session.id if ctx.session else action.session_id,
        )
        return Decision(
            result=event.result,
            reason=event.reason,
            event_id=event.id,
            code=event.code,
            session_id=ctx.session.id if ctx.session else action.session_id,
            agent_name=identity.agent.name if identity else None,
            project_name=identity.project.name if identity else None,
            evidence=_evidence(verdict),
            action=action,
            context=ctx,
        )

    async def _refuse_unwritten(
        self, action: Action, ctx: Context, failure: TetherError, allowed: AuditEvent
    ) -> tuple[Deny, AuditEvent]:
        """What the decision depends on (a new session's row, its budget lease) commits with
        its event, one commit on a call that starts a session; when that write failed, the
        call allowed is refused after all, and the trail says so in a second event (raises
        ``AuditUnavailable`` if it cannot)."""
        await self._undo(action, ctx, failure)
        verdict = Deny(
            failure.code,
            f"{failure.message}; the call decided in event {allowed.id} was refused after all",
        )
        ctx.session = None
        event = decision_event(action, ctx, verdict)
        await self._audit.record(event)
        return verdict, event

    async def record_parts(self, decision: Decision, parts: list[Action]) -> None:
        """Record each action decided together in ``decision`` (a message batch's requests,
        each checked with ``preview`` first) as allowed with it, so the trail shows every
        one of them, not only the batch."""
        assert decision.context is not None
        ctx = decision.context
        events = []
        for part in parts:
            event = decision_event(part, ctx, None)
            event.reason = f"part of decision {decision.event_id}: {event.reason}"
            events.append(event)
        await self._audit.record_many(events, urgent=True)

    async def record_call(
        self,
        *,
        source: str,
        credential: str,
        action: str,
        resource: str,
        session_id: str | None,
        attributes: dict[str, Any],
        reason: str,
    ) -> str:
        """Record a call that needs no decision of its own (a task read or checkpoint) as
        an observation; the id of the session it went into. Raises when it was refused
        (a stopped session), with the refusal's code and reason."""
        ctx = Context()
        observed = Action(
            source=source,
            credential=credential,
            action=action,
            resource=resource,
            session_id=session_id,
            attributes=attributes,
        )
        refusal = await self.observe(observed, "ok", reason, ctx)
        if refusal is not None:
            raise TetherError(refusal.reason, code=refusal.code)
        assert ctx.session is not None
        return ctx.session.id

    async def observe(
        self,
        action: Action,
        result: str,
        reason: str,
        ctx: Context | None = None,
        *,
        settled_with: Decision | None = None,
    ) -> Deny | None:
        """Record something an agent already did (a tool's result): only the stages that
        say who, which session and whether it is stopped run (``observes = True``); no
        decision is taken. A stopped session's report is refused and the refusal recorded;
        raises if the caller cannot be identified. Pass ``ctx`` to read what stages found
        (the session, a task block to inject). ``settled_with``: the observation is part of
        that decision's outcome (a tool answer tether relayed), so its event is written with
        the outcome's when the decision is settled; the observing stages count it now."""
        ctx = Context() if ctx is None else ctx
        for stage in self.stages:
            if not getattr(stage, "observes", False):
                continue
            verdict = await stage.check(action, ctx)
            if verdict is None and (unwritten := await _unwritten_refusal(ctx)) is not None:
                verdict, ctx.session = Deny(unwritten.code, unwritten.message), None
            if isinstance(verdict, Deny):
                if ctx.identity is None:
                    raise TetherError(verdict.reason, code=verdict.code)
                await self._audit.record(decision_event(action, ctx, verdict))
                return verdict
        note_identity(
            ctx.identity.agent.name if ctx.identity else None,
            ctx.session.id if ctx.session else action.session_id,
        )
        event = observation_event(action, ctx, result, reason)
        if settled_with is None or not settled_with.held.hold(event):
            await self._audit.record(event)
        for stage in self._observers:
            await stage.observed(action, ctx)
        return None

    async def review(self, decision: Decision, tool_use: ToolUse) -> Deny | None:
        """Whether the agent may receive a tool call the model asked for in an allowed
        call; the stage that refuses records why."""
        action, ctx = decision.action, decision.context
        assert action is not None and ctx is not None
        return await _first_refusal(
            stage.review(action, ctx, tool_use) for stage in self._reviewers
        )

    async def cover_output(self, decision: Decision, tokens: int) -> Deny | None:
        """Whether an allowed call may go on producing up to ``tokens`` output tokens."""
        action, ctx = decision.action, decision.context
        assert action is not None and ctx is not None
        return await _first_refusal(
            stage.cover_output(action, ctx, tokens) for stage in self._coverers
        )

    async def settle_later(self, decision: Decision, outcome: Outcome) -> None:
        """Settle without holding the connection for the commit: the response is already
        out, and an HTTP keep-alive connection must not wait for it before its next request.
        The stages settle now (in memory on the common path); the outcome's events join
        the audit log's next commit, which nobody waits for. Only what has to be retried
        (the store refused a stage or the events) goes on in a task of its own; a call
        settled in full costs no task. At most ``SETTLEMENT_BACKLOG``
        settlements are unwritten at once; past that, callers wait for room (back-pressure)
        rather than pile up work that a crash would lose."""
        await self._room.acquire()
        assert decision.action is not None and decision.context is not None
        action, ctx = decision.action, decision.context
        for at, stage in enumerate(self._settlers):
            try:
                await stage.settle(action, ctx, outcome)
            except BaseException as exc:
                failure = exc if isinstance(exc, Exception) else None
                self._in_background(self._settle_from(decision, outcome, at, failure))
                if failure is None:
                    raise
                return
        events = self._outcome_events(decision, outcome)
        try:
            written = await self._audit.submit(events, urgent=False)
        except Exception as exc:
            self._in_background(self._record_until_written(decision, events, exc))
            return
        self._writing.add(written)
        written.add_done_callback(functools.partial(self._outcome_written, decision, events))

    def _outcome_written(
        self, decision: Decision, events: list[AuditEvent], written: asyncio.Future[None]
    ) -> None:
        self._writing.discard(written)
        failure = asyncio.CancelledError() if written.cancelled() else written.exception()
        if failure is None:
            self._room.release()
            return
        retry = failure if isinstance(failure, Exception) else None
        self._in_background(self._record_until_written(decision, events, retry))

    def _in_background(self, settling: Coroutine[Any, Any, None]) -> None:
        """Finish a settlement (holding its room) in a task of its own."""
        task = asyncio.create_task(settling)
        self._settling.add(task)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._settling.discard(task)
        self._room.release()

    async def drain(self) -> None:
        """Wait for background settlements (at shutdown, before the audit log stops); those
        still failing after ``DRAIN_SECONDS`` are given up, loudly."""
        self._give_up_at = asyncio.get_running_loop().time() + DRAIN_SECONDS
        while self._settling or self._writing:
            await asyncio.gather(*self._settling, *self._writing, return_exceptions=True)

    async def _undo(self, action: Action, ctx: Context, exc: TetherError) -> None:
        """The decision could not be recorded, so nothing will act on it: give back what
        stages took (a budget hold) at once rather than when its reservation expires."""
        nothing = Outcome(result="error", status=503, latency_ms=0.0, detail=exc.message)
        for stage in self._settlers:
            try:
                await stage.settle(action, ctx, nothing)
            except Exception:
                log.exception("undoing %s failed", type(stage).__name__)

    async def settle(self, decision: Decision, outcome: Outcome) -> None:
        """Never raises: the effect already happened. What the store refuses (an outage) is
        retried until written, each part once: the budget charge, then the completion
        events; a failure that is not the store's is logged loudly and not retried."""
        await self._settle_from(decision, outcome, 0, None)

    async def _settle_from(
        self, decision: Decision, outcome: Outcome, first: int, failure: Exception | None
    ) -> None:
        """Settle from the ``first`` settling stage on, whose own try failed with
        ``failure`` (None: not tried yet, or cut off before it finished)."""
        assert decision.action is not None and decision.context is not None
        action, ctx = decision.action, decision.context
        for stage in self._settlers[first:]:
            if failure is None:
                try:
                    await stage.settle(action, ctx, outcome)
                    continue
                except Exception as exc:
                    failure = exc
            await self._until_written(
                lambda stage=stage: stage.settle(action, ctx, outcome),  # type: ignore[misc]
                f"settling decision {decision.event_id} in {type(stage).__name__}",
                failure,
            )
            failure = None
        await self._record_until_written(decision, self._outcome_events(decision, outcome))

    @staticmethod
    def _outcome_events(decision: Decision, outcome: Outcome) -> list[AuditEvent]:
        assert decision.action is not None and decision.context is not None
        return [
            *decision.held.take(),
            *outcome_events(decision.action, decision.context, outcome, decision.event_id),
        ]

    async def _record_until_written(
        self, decision: Decision, events: list[AuditEvent], failure: Exception | None = None
    ) -> None:
        """``failure``: why the first try did not write them; a refused event is written
        apart from the others at once, an outage retried."""
        if failure is None or isinstance(failure, AuditEventRejected):
            try:
                await self._record_outcome(events)
                return
            except Exception as exc:
                failure = exc
        await self._until_written(
            lambda: self._record_outcome(events),
            f"recording the {len(events)} outcome events of decision {decision.event_id}",
            failure,
        )

    async def _record_outcome(self, events: list[AuditEvent]) -> None:
        """In one commit; if the store refuses one event, the others are written one by
        one and the refused one is logged, never retried (it would be refused forever)."""
        try:
            await self._audit.record_many(events, urgent=False)
        except AuditEventRejected:
            for event in events:
                try:
                    await self._audit.record_many([event], urgent=False)
                except AuditEventRejected as exc:
                    log.error("audit event %s %s refused: %s", event.id, event.action, exc.message)

    async def _until_written(
        self, work: Callable[[], Awaitable[object]], what: str, failure: Exception
    ) -> None:
        """``work`` failed with ``failure`` on its first try (made inline, the common case
        costing no retry machinery): the store's refusals are retried, backing off."""
        delay = RETRY_FIRST_SECONDS
        while True:
            if not isinstance(failure, TetherError):
                log.error("%s failed", what, exc_info=failure)
                return
            now = asyncio.get_running_loop().time()
            if self._give_up_at is not None and now >= self._give_up_at:
                log.error("%s failed and tether is stopping; lost: %s", what, failure.message)
                return
            log.warning("%s failed; retrying in %.1f s: %s", what, delay, failure.message)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)
            try:
                await work()
                return
            except Exception as exc:
                failure = exc
