"""A circuit breaker per project on its upstream: after a run of 429/5xx answers, model
calls fail fast without reaching upstream. Each opening lasts the breaker's own cool-down,
doubled at every re-opening up to a maximum, and never less than upstream's
``retry-after``: an agent that retries on its own back-off (Claude Code ignores the
breaker's hint and tries again within seconds) cannot keep hammering a failing upstream.
After the cool-down calls go through again, and the first failure re-opens it at once.

There is no single designated probe: a probe call that a later stage refuses (policy,
budget) would never report back and would hold the breaker shut."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CircuitBreaker", "CircuitBreakers"]


@dataclass(slots=True)
class CircuitBreaker:
    failures_in_a_row: int = 0
    open_until_ms: int = 0
    """0 when closed; past it, the breaker is half-open."""
    openings: int = 0
    """Openings since upstream last answered well: each lasts twice the one before."""

    def wait_ms(self, at_ms: int) -> int | None:
        """None when a call may go; otherwise how long until one may."""
        if at_ms < self.open_until_ms:
            return self.open_until_ms - at_ms
        return None

    def succeeded(self) -> None:
        self.failures_in_a_row, self.open_until_ms, self.openings = 0, 0, 0

    def failed(
        self, at_ms: int, threshold: int, cooldown_ms: int, max_cooldown_ms: int, floor_ms: int
    ) -> bool:
        """Returns whether this opened the breaker. Calls that were already in flight when
        it opened do not extend the cool-down. ``floor_ms``: upstream's retry-after."""
        if at_ms < self.open_until_ms:
            return False
        self.failures_in_a_row += 1
        half_open = self.open_until_ms != 0
        if not (half_open or self.failures_in_a_row >= threshold):
            return False
        grown = cooldown_ms * 2 ** min(self.openings, 30)
        self.openings += 1
        self.open_until_ms = at_ms + max(min(grown, max_cooldown_ms), floor_ms)
        return True


class CircuitBreakers:
    def __init__(self) -> None:
        self._by_project: dict[str, CircuitBreaker] = {}

    def open_count(self, at_ms: int) -> int:
        """Projects whose calls fail fast right now."""
        return sum(1 for breaker in self._by_project.values() if breaker.wait_ms(at_ms))

    def of(self, project_id: str) -> CircuitBreaker:
        breaker = self._by_project.get(project_id)
        if breaker is None:
            breaker = self._by_project[project_id] = CircuitBreaker()
        return breaker
