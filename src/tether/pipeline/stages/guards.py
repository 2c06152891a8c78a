"""Stage 4: runaway loops stop here — a request repeated too often, a tool call that keeps
giving the same answer, a session whose calls keep failing or that stops moving on, tool
results that no hook saw, and, per project, an upstream that keeps answering 429/5xx (the
circuit breaker).

Decisions read per-session memory (``SessionWatches``). A tool call the model asks for is
reviewed as it streams (``review``), so a call that would trip is never delivered to the
agent; tool answers are counted from the next request and from PostToolUse hooks.
"""

from __future__ import annotations

from collections.abc import Callable

from tether.guards.breaker import CircuitBreakers
from tether.guards.fingerprints import action_fingerprint, tool_use_fingerprint
from tether.guards.responses import TripResponder
from tether.guards.settings import GuardSettings, OnTrip, load_guard_settings
from tether.guards.watches import SessionWatch, SessionWatches, Trip
from tether.pipeline.action import Action, Context, Deny, Verdict
from tether.pipeline.outcome import Outcome, ToolUse
from tether.store.clock import now_ms

__all__ = ["EnforceGuards"]

MODEL_CALL = "model:messages"


def _deny(trip: Trip) -> Deny:
    return Deny(trip.code, f"tether: {trip.reason}", trip.evidence)


def _repeated_tool_call(name: str, times: int, limit: int) -> Trip:
    return Trip(
        "repeated_tool_call",
        f"this {name} call already gave the same result {times} times in this session "
        f"(the project allows {limit}); it was not run again",
        {"tool": name, "same_result_times": times, "tool_repeat_limit": limit},
    )


class EnforceGuards:
    def __init__(self, responder: TripResponder, clock: Callable[[], int] = now_ms) -> None:
        self._responder = responder
        self.clock = clock
        """Milliseconds now; replaceable so a test can replay hours of calls."""
        self.watches = SessionWatches()
        self.breakers = CircuitBreakers()

    async def check(self, action: Action, ctx: Context) -> Verdict | None:
        if ctx.preview:
            return None
        assert ctx.identity is not None and ctx.session is not None
        settings = load_guard_settings(ctx.identity.project.guards)
        at = self.clock()
        watch = self.watches.of(ctx.session.id, at)
        for result in action.tool_results:
            watch.answer(result.tool_use_id, None, result.digest, at)
        trip = watch.pending or self._retried_withheld(action, watch)
        trip = trip or self._trip_before(action, ctx, settings, watch, at)
        watch.pending = None
        if trip is None:
            return None
        await self._respond(trip, settings, ctx, watch)
        return _deny(trip)

    @staticmethod
    def _retried_withheld(action: Action, watch: SessionWatch) -> Trip | None:
        withheld = watch.withheld
        if withheld is None or action.fingerprint is None:
            return None
        if action.fingerprint != withheld[0]:
            watch.withheld = None
            return None
        return withheld[1]

    def _trip_before(
        self, action: Action, ctx: Context, settings: GuardSettings, watch: SessionWatch, at: int
    ) -> Trip | None:
        if action.tool_use is not None:
            trip = self._tool_use_trip(action.tool_use, settings, watch) or self._retry_trip(
                action, settings, watch
            )
        elif action.action == MODEL_CALL:
            trip = (
                self._unverified(action, settings, watch)
                or self._retry_trip(action, settings, watch)
                or self._breaker_trip(ctx, settings, watch, at)
                or self._stall_trip(settings, watch, at)
            )
        else:
            trip = self._retry_trip(action, settings, watch)
        return trip or self._repeat_trip(action, settings, watch, at)

    def _tool_use_trip(
        self, tool_use: ToolUse, settings: GuardSettings, watch: SessionWatch
    ) -> Trip | None:
        """A PreToolUse hook: remember that tether was asked, refuse a call that keeps
        giving the same answer."""
        watch.hook_decided(tool_use.id)
        limit = settings.tool_repeat_limit
        times = watch.times_answered_alike(tool_use_fingerprint(tool_use.name, tool_use.input))
        if limit is not None and times >= limit:
            return _repeated_tool_call(tool_use.name, times, limit)
        return None

    def _unverified(
        self, action: Action, settings: GuardSettings, watch: SessionWatch
    ) -> Trip | None:
        if not settings.require_hooks:
            return None
        unseen = [
            r.tool_use_id
            for r in action.tool_results
            if r.tool_use_id not in watch.decided_tool_uses
        ]
        if not unseen:
            return None
        return Trip(
            "unverified_tool_execution",
            f"the project requires Claude Code hooks, but {len(unseen)} tool result(s) came "
            f"back for tool calls tether never decided through PreToolUse ({unseen[0]}); "
            "configure the hooks (with onFailure: block) before running tools",
            {"tool_use_ids": unseen[:20]},
        )

    def _retry_trip(
        self, action: Action, settings: GuardSettings, watch: SessionWatch
    ) -> Trip | None:
        limit = settings.max_retries
        retries = action.attributes.get("retry_count")
        if limit is not None and isinstance(retries, int) and retries > limit:
            return Trip(
                "retry_limit",
                f"this request was retried {retries} times; the project allows {limit}",
                {"retries": retries, "max_retries": limit},
            )
        if limit is not None and watch.failures_in_a_row > limit:
            failures, watch.failures_in_a_row = watch.failures_in_a_row, 0
            return Trip(
                "retry_limit",
                f"the session's last {failures} calls failed; the project allows a call and "
                f"{limit} retries",
                {"failures_in_a_row": failures, "max_retries": limit},
            )
        return None

    def _breaker_trip(
        self, ctx: Context, settings: GuardSettings, watch: SessionWatch, at: int
    ) -> Trip | None:
        assert ctx.identity is not None
        if settings.breaker_failures is None:
            return None
        wait = self.breakers.of(ctx.identity.project.id).wait_ms(at)
        if wait is None:
            return None
        watch.failures_in_a_row += 1
        seconds = max(1, -(-wait // 1000))
        return Trip(
            "upstream_circuit_open",
            f"the Anthropic API kept failing for project {ctx.identity.project.name!r}; "
            f"calls fail fast for {seconds} s more",
            {"retry_after_seconds": seconds},
        )

    def _stall_trip(self, settings: GuardSettings, watch: SessionWatch, at: int) -> Trip | None:
        minutes = settings.stall_minutes
        if minutes is None or at - watch.last_news_ms < minutes * 60_000:
            return None
        idle = (at - watch.last_news_ms) // 60_000
        watch.last_news_ms = at
        return Trip(
            "no_progress",
            f"the session kept calling for {idle} minutes without any new tool result",
            {"minutes_without_progress": idle, "stall_minutes": minutes},
        )

    def _repeat_trip(
        self, action: Action, settings: GuardSettings, watch: SessionWatch, at: int
    ) -> Trip | None:
        repeat = settings.repeat_limit
        if repeat is None:
            return None
        fingerprint = action.fingerprint or action_fingerprint(action.action, action.resource)
        window_ms = settings.repeat_window_seconds * 1000
        if watch.would_repeat(fingerprint, at, window_ms) > repeat:
            return Trip(
                "repeated_call",
                f"this session made the same {action.action} call on {action.resource} more "
                f"than {repeat} times in {settings.repeat_window_seconds} s",
                {"repeat_limit": repeat, "window_seconds": settings.repeat_window_seconds},
            )
        watch.occurrences(fingerprint, at, window_ms, repeat + 1)
        return None

    async def review(self, action: Action, ctx: Context, tool_use: ToolUse) -> Deny | None:
        """A tool call the model just asked for, before the agent sees it: refused when the
        same call already gave the same answer ``tool_repeat_limit`` times."""
        if ctx.identity is None or ctx.session is None:
            return None
        settings = load_guard_settings(ctx.identity.project.guards)
        watch = self.watches.of(ctx.session.id, self.clock())
        tool_call = tool_use_fingerprint(tool_use.name, tool_use.input)
        watch.asked_for(tool_use.id, tool_call)
        limit = settings.tool_repeat_limit
        times = watch.times_answered_alike(tool_call)
        if limit is None or times < limit:
            return None
        trip = _repeated_tool_call(tool_use.name, times, limit)
        if action.fingerprint is not None:
            watch.withheld = (action.fingerprint, trip)
        await self._respond(trip, settings, ctx, watch)
        return _deny(trip)

    def observed(self, action: Action, ctx: Context) -> None:
        """A PostToolUse hook: count the tool's answer."""
        if ctx.session is None or action.tool_use is None:
            return
        at = self.clock()
        watch = self.watches.of(ctx.session.id, at)
        tool_call = tool_use_fingerprint(action.tool_use.name, action.tool_use.input)
        for result in action.tool_results:
            watch.answer(result.tool_use_id, tool_call, result.digest, at)

    async def settle(self, action: Action, ctx: Context, outcome: Outcome) -> None:
        if ctx.identity is None or ctx.session is None or action.action != MODEL_CALL:
            return
        settings = load_guard_settings(ctx.identity.project.guards)
        at = self.clock()
        self._settle_breaker(ctx.identity.project.id, settings, outcome, at)
        watch = self.watches.of(ctx.session.id, at)
        if outcome.result == "error" and outcome.upstream_reached:
            watch.failures_in_a_row += 1
        elif outcome.result == "ok":
            watch.failures_in_a_row = 0
        if outcome.result != "ok":
            return
        trip = self._trip_after(outcome, settings, watch, at)
        if trip is None:
            return
        if settings.on_trip is OnTrip.DENY:
            watch.pending = trip
        else:
            await self._respond(trip, settings, ctx, watch)

    def _settle_breaker(
        self, project_id: str, settings: GuardSettings, outcome: Outcome, at: int
    ) -> None:
        threshold = settings.breaker_failures
        if threshold is None:
            return
        breaker = self.breakers.of(project_id)
        if outcome.upstream_overloaded:
            breaker.failed(
                at,
                threshold,
                settings.breaker_cooldown_seconds * 1000,
                settings.breaker_max_cooldown_seconds * 1000,
                int((outcome.retry_after_seconds or 0) * 1000),
            )
        elif outcome.result == "ok" or (outcome.result == "error" and outcome.status < 500):
            breaker.succeeded()

    def _trip_after(
        self, outcome: Outcome, settings: GuardSettings, watch: SessionWatch, at: int
    ) -> Trip | None:
        """An answer that asked only for tool calls asked for before is no progress; one
        that asked for none ends a turn, which is."""
        if not outcome.tool_uses:
            watch.last_news_ms = at
        news = not outcome.tool_uses
        window_ms = settings.repeat_window_seconds * 1000
        for tool_use in outcome.tool_uses:
            fingerprint = tool_use_fingerprint(tool_use.name, tool_use.input)
            news = news or watch.is_new(fingerprint)
            watch.occurrences(fingerprint, at, window_ms, 1)
        watch.calls_without_news = 0 if news else watch.calls_without_news + 1
        stall = settings.stall_calls
        if stall is not None and watch.calls_without_news >= stall:
            calls, watch.calls_without_news = watch.calls_without_news, 0
            return Trip(
                "no_progress",
                f"the model's last {calls} answers asked only for tool calls it had asked for "
                "before",
                {"calls_without_progress": calls, "stall_calls": stall},
            )
        return None

    async def _respond(
        self, trip: Trip, settings: GuardSettings, ctx: Context, watch: SessionWatch
    ) -> None:
        assert ctx.identity is not None and ctx.session is not None
        on_trip = OnTrip.DENY if trip.code == "upstream_circuit_open" else settings.on_trip
        await self._responder.respond(trip, on_trip, ctx.identity, ctx.session.id, watch)
