"""Stage 4: runaway loops stop here — a request repeated too often, a tool call that keeps
giving the same answer, a session whose calls keep failing or that stops moving on, tool
results that no hook saw, and, per project, an upstream that keeps answering 429/5xx (the
circuit breaker).

Decisions read per-session memory (``guards/memory.py``: this process's, or Redis shared
by a fleet's processes). A tool call the model asks for is
reviewed as it streams (``review``), so a call that would trip is never delivered to the
agent; tool answers are counted from the next request and from PostToolUse hooks.
"""

from __future__ import annotations

from collections.abc import Callable

from tether.clock import now_ms
from tether.guards.breaker import CircuitBreaker
from tether.guards.fingerprints import action_fingerprint, tool_use_fingerprint
from tether.guards.memory import GuardMemory, LocalGuardMemory
from tether.guards.responses import TripResponder
from tether.guards.settings import GuardSettings, OnTrip, load_guard_settings
from tether.guards.watches import SessionWatch, Trip
from tether.pipeline.action import Action, Context, Deny, Verdict
from tether.pipeline.outcome import Outcome, ToolUse

__all__ = ["EnforceGuards"]

MODEL_CALL = "model:messages"


def _call_of(tool_use: ToolUse) -> int:
    """The tool call's fingerprint: as computed where its input was read, if it was."""
    if tool_use.fingerprint is not None:
        return tool_use.fingerprint
    return tool_use_fingerprint(tool_use.name, tool_use.input)


def _deny(trip: Trip) -> Deny:
    return Deny(trip.code, f"tether: {trip.reason}", trip.evidence)


def _repeated_tool_call(name: str, times: int, limit: int) -> Trip:
    return Trip(
        "repeated_tool_call",
        f"this {name} call already gave the same result {times} times in this session "
        f"(the project allows {limit}); it was not run again",
        {"tool": name, "same_result_times": times, "tool_repeat_limit": limit},
    )


def _longest_window_ms(settings: GuardSettings) -> int:
    """How long a tool call asked for stays "asked before": the longest window a guard
    looks back over (a call last asked longer ago than that is news again)."""
    return 1000 * max(settings.repeat_window_seconds, 60 * (settings.stall_minutes or 0))


def _alert_once(watch: SessionWatch, trip: Trip | None) -> tuple[Trip, bool] | None:
    """The trip, and whether it is the first of its kind in the session (alerted once)."""
    if trip is None:
        return None
    first = trip.code not in watch.alerted
    if first:
        watch.alerted |= {trip.code}
    return trip, first


def _forget_alert(watch: SessionWatch, code: str) -> None:
    """An alert that could not be queued is tried again at the session's next trip."""
    watch.alerted -= {code}


class EnforceGuards:
    def __init__(
        self,
        responder: TripResponder,
        clock: Callable[[], int] = now_ms,
        memory: GuardMemory | None = None,
    ) -> None:
        self._responder = responder
        self.clock = clock
        """Milliseconds now; replaceable so a test can replay hours of calls."""
        self.memory: GuardMemory = memory or LocalGuardMemory()

    async def check(self, action: Action, ctx: Context) -> Verdict | None:
        if ctx.preview:
            return None
        assert ctx.identity is not None and ctx.session is not None
        settings = load_guard_settings(ctx.identity.project.guards)
        at = self.clock()
        breaker_of = (
            ctx.identity.project.id
            if action.tool_use is None
            and action.action == MODEL_CALL
            and settings.breaker_failures is not None
            else None
        )

        def judge(watch: SessionWatch, breaker: CircuitBreaker | None) -> tuple[Trip, bool] | None:
            for result in action.tool_results:
                watch.answer(result.tool_use_id, None, result.digest, at)
            trip = watch.pending or self._retried_withheld(action, watch)
            trip = trip or self._trip_before(action, ctx, settings, watch, breaker, at)
            watch.pending = None
            return _alert_once(watch, trip)

        judged = await self.memory.update(ctx.session.id, at, judge, breaker_of)
        if judged is None:
            return None
        await self._respond(judged, settings, ctx)
        return _deny(judged[0])

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
        self,
        action: Action,
        ctx: Context,
        settings: GuardSettings,
        watch: SessionWatch,
        breaker: CircuitBreaker | None,
        at: int,
    ) -> Trip | None:
        if action.tool_use is not None:
            trip = self._tool_use_trip(action.tool_use, settings, watch) or self._retry_trip(
                action, settings, watch
            )
        elif action.action == MODEL_CALL:
            trip = (
                self._unverified(action, settings, watch)
                or self._retry_trip(action, settings, watch)
                or self._breaker_trip(ctx, watch, breaker, at)
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
        times = watch.times_answered_alike(_call_of(tool_use))
        if limit is not None and times >= limit:
            return _repeated_tool_call(tool_use.name, times, limit)
        return None

    def _unverified(
        self, action: Action, settings: GuardSettings, watch: SessionWatch
    ) -> Trip | None:
        if not settings.require_hooks:
            return None
        unseen = [
            r.tool_use_id for r in action.tool_results if not watch.was_decided(r.tool_use_id)
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

    @staticmethod
    def _breaker_trip(
        ctx: Context, watch: SessionWatch, breaker: CircuitBreaker | None, at: int
    ) -> Trip | None:
        """``breaker``: the project's, or None when its breaker is off."""
        assert ctx.identity is not None
        wait = None if breaker is None else breaker.wait_ms(at)
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
        tool_call = _call_of(tool_use)
        limit = settings.tool_repeat_limit

        def judge(watch: SessionWatch, _: CircuitBreaker | None) -> tuple[Trip, bool] | None:
            watch.asked_for(tool_use.id, tool_call)
            times = watch.times_answered_alike(tool_call)
            if limit is None or times < limit:
                return None
            trip = _repeated_tool_call(tool_use.name, times, limit)
            if action.fingerprint is not None:
                watch.withheld = (action.fingerprint, trip)
            return _alert_once(watch, trip)

        judged = await self.memory.update(ctx.session.id, self.clock(), judge)
        if judged is None:
            return None
        await self._respond(judged, settings, ctx)
        return _deny(judged[0])

    async def observed(self, action: Action, ctx: Context) -> None:
        """A PostToolUse hook: count the tool's answer."""
        if ctx.session is None or action.tool_use is None or not action.tool_results:
            return
        at = self.clock()
        tool_call = _call_of(action.tool_use)

        def count(watch: SessionWatch, _: CircuitBreaker | None) -> None:
            for result in action.tool_results:
                watch.answer(result.tool_use_id, tool_call, result.digest, at)

        await self.memory.update(ctx.session.id, at, count)

    async def settle(self, action: Action, ctx: Context, outcome: Outcome) -> None:
        if ctx.identity is None or ctx.session is None or action.action != MODEL_CALL:
            return
        settings = load_guard_settings(ctx.identity.project.guards)
        at = self.clock()
        breaker_of = None if settings.breaker_failures is None else ctx.identity.project.id

        def record(watch: SessionWatch, breaker: CircuitBreaker | None) -> tuple[Trip, bool] | None:
            if breaker is not None:
                self._settle_breaker(breaker, settings, outcome, at)
            if outcome.result == "error" and outcome.upstream_reached:
                watch.failures_in_a_row += 1
            elif outcome.result == "ok":
                watch.failures_in_a_row = 0
            if outcome.result != "ok":
                return None
            trip = self._trip_after(outcome, settings, watch, at)
            if trip is not None and settings.on_trip is OnTrip.DENY:
                watch.pending = trip
                return None
            return _alert_once(watch, trip)

        judged = await self.memory.update(ctx.session.id, at, record, breaker_of)
        if judged is not None:
            await self._respond(judged, settings, ctx)

    @staticmethod
    def _settle_breaker(
        breaker: CircuitBreaker, settings: GuardSettings, outcome: Outcome, at: int
    ) -> None:
        threshold = settings.breaker_failures
        assert threshold is not None
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
        window_ms = _longest_window_ms(settings)
        for tool_use in outcome.tool_uses:
            fingerprint = _call_of(tool_use)
            news = watch.asked_anew(fingerprint, at, window_ms) or news
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
        self, judged: tuple[Trip, bool], settings: GuardSettings, ctx: Context
    ) -> None:
        """Pause or terminate, audit, and alert the first trip of its kind; an alert that
        could not be queued is tried again at the next trip."""
        assert ctx.identity is not None and ctx.session is not None
        trip, first = judged
        on_trip = OnTrip.DENY if trip.code == "upstream_circuit_open" else settings.on_trip
        queued = await self._responder.respond(trip, on_trip, ctx.identity, ctx.session.id, first)
        if first and not queued:
            await self.memory.update(
                ctx.session.id, self.clock(), lambda watch, _: _forget_alert(watch, trip.code)
            )
