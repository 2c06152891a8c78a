"""Stage 4: runaway loops stop here — a call repeated too often, a request retried too many
times, a session whose calls keep failing or whose model keeps asking for the same things,
and, per project, an upstream that keeps answering 429/5xx (the circuit breaker).

Decisions read per-session memory (``SessionWatches``); settling feeds it what upstream
answered and which tools the model asked for.
"""

from __future__ import annotations

from tether.guards.breaker import CircuitBreakers
from tether.guards.fingerprints import action_fingerprint, tool_use_fingerprint
from tether.guards.responses import TripResponder
from tether.guards.settings import GuardSettings, OnTrip, load_guard_settings
from tether.guards.watches import SessionWatch, SessionWatches, Trip
from tether.pipeline.action import Action, Context, Deny, Verdict
from tether.pipeline.outcome import Outcome
from tether.store.clock import now_ms

__all__ = ["EnforceGuards"]

MODEL_CALL = "model:messages"


def _deny(trip: Trip) -> Deny:
    return Deny(trip.code, f"tether: {trip.reason}", trip.evidence)


class EnforceGuards:
    def __init__(self, responder: TripResponder) -> None:
        self._responder = responder
        self.watches = SessionWatches()
        self.breakers = CircuitBreakers()

    async def check(self, action: Action, ctx: Context) -> Verdict | None:
        if ctx.preview:
            return None
        assert ctx.identity is not None and ctx.session is not None
        settings = load_guard_settings(ctx.identity.project.guards)
        at = now_ms()
        if action.action == MODEL_CALL and settings.breaker_failures is not None:
            wait = self.breakers.of(ctx.identity.project.id).wait_ms(at)
            if wait is not None:
                seconds = max(1, -(-wait // 1000))
                return Deny(
                    "upstream_circuit_open",
                    f"tether: the Anthropic API kept failing for project "
                    f"{ctx.identity.project.name!r}; calls fail fast for {seconds} s more",
                    {"retry_after_seconds": seconds},
                )
        watch = self.watches.of(ctx.session.id)
        trip = watch.pending or self._trip_before(action, settings, watch, at)
        watch.pending = None
        if trip is None:
            return None
        await self._respond(trip, settings, ctx, watch)
        return _deny(trip)

    def _trip_before(
        self, action: Action, settings: GuardSettings, watch: SessionWatch, at: int
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

    async def settle(self, action: Action, ctx: Context, outcome: Outcome) -> None:
        if ctx.identity is None or ctx.session is None or action.action != MODEL_CALL:
            return
        settings = load_guard_settings(ctx.identity.project.guards)
        at = now_ms()
        self._settle_breaker(ctx.identity.project.id, settings, outcome, at)
        watch = self.watches.of(ctx.session.id)
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
            cooldown = outcome.retry_after_seconds or settings.breaker_cooldown_seconds
            breaker.failed(at, threshold, int(cooldown * 1000))
        elif outcome.result == "ok" or (outcome.result == "error" and outcome.status < 500):
            breaker.succeeded()

    def _trip_after(
        self, outcome: Outcome, settings: GuardSettings, watch: SessionWatch, at: int
    ) -> Trip | None:
        """What the model asked for: the same tool call again and again, or nothing new."""
        news = not outcome.tool_uses
        repeat = settings.repeat_limit
        window_ms = settings.repeat_window_seconds * 1000
        for tool_use in outcome.tool_uses:
            fingerprint = tool_use_fingerprint(tool_use.name, tool_use.input)
            news = news or watch.is_new(fingerprint)
            seen = watch.occurrences(fingerprint, at, window_ms, (repeat or 0) + 1)
            if repeat is not None and seen > repeat:
                return Trip(
                    "repeated_tool_call",
                    f"the model asked for the same {tool_use.name} call more than {repeat} "
                    f"times in {settings.repeat_window_seconds} s",
                    {"tool": tool_use.name, "repeat_limit": repeat},
                )
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
        await self._responder.respond(trip, settings.on_trip, ctx.identity, ctx.session.id, watch)
