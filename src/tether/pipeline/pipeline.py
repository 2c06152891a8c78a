"""Runs the stages in order, records the decision before anyone acts on it, and settles
the outcome afterwards (usage, budgets, the completion record)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from tether.audit.log import AuditLog
from tether.errors import TetherError
from tether.logs.request_scope import note_identity
from tether.pipeline.action import Action, Context, Decision, Deny, Pending, Verdict
from tether.pipeline.events import decision_event, observation_event, outcome_events
from tether.pipeline.outcome import Outcome

__all__ = ["Pipeline", "Settles", "Stage"]

log = logging.getLogger(__name__)


class Stage(Protocol):
    """One check. Return None for no objection, or a Verdict to stop the pipeline there."""

    async def check(self, action: Action, ctx: Context) -> Verdict | None: ...


@runtime_checkable
class Settles(Protocol):
    """A stage that also acts once the outcome is known (metering, budget settlement)."""

    async def settle(self, action: Action, ctx: Context, outcome: Outcome) -> None: ...


def _evidence(verdict: Verdict | None) -> dict[str, object]:
    if isinstance(verdict, Deny):
        return verdict.evidence
    if isinstance(verdict, Pending):
        return {"approval_id": verdict.approval_id}
    return {}


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
        self._audit = audit
        self._settling: set[asyncio.Task[None]] = set()

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
            await self._undo(action, ctx, exc)
            raise
        if self._on_decided is not None:
            self._on_decided(action.source, time.perf_counter() - started)
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

    async def observe(self, action: Action, result: str, reason: str) -> str:
        """Record something an agent already did (a tool's result): only the stages that
        say who and which session run (``observes = True``); no decision is taken.
        Returns the audit event's id; raises if the caller cannot be identified."""
        ctx = Context()
        for stage in self.stages:
            if not getattr(stage, "observes", False):
                continue
            verdict = await stage.check(action, ctx)
            if isinstance(verdict, Deny):
                raise TetherError(verdict.reason, code=verdict.code)
        event = observation_event(action, ctx, result, reason)
        note_identity(
            ctx.identity.agent.name if ctx.identity else None,
            ctx.session.id if ctx.session else action.session_id,
        )
        await self._audit.record(event)
        return event.id

    def settle_soon(self, decision: Decision, outcome: Outcome) -> None:
        """Settle in the background: the response is already out, and an HTTP keep-alive
        connection must not wait for the settlement's commit before its next request."""
        task = asyncio.create_task(self.settle(decision, outcome))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def drain(self) -> None:
        """Wait for background settlements (at shutdown, before the audit log stops)."""
        while self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

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
        """Never raises: the effect already happened; failures are logged loudly."""
        assert decision.action is not None and decision.context is not None
        for stage in self._settlers:
            try:
                await stage.settle(decision.action, decision.context, outcome)
            except Exception:
                log.exception("settling in %s failed", type(stage).__name__)
        events = outcome_events(decision.action, decision.context, outcome, decision.event_id)
        try:
            await self._audit.record_many(events, urgent=False)
        except TetherError as exc:
            log.error(
                "%d audit events of decision %s not recorded: %s",
                len(events),
                decision.event_id,
                exc.message,
            )
