"""A circuit breaker per project on its upstream: after a run of 429/5xx answers, calls
fail fast for a cool-down (upstream's ``retry-after`` when it gave one). After the
cool-down calls go through again, and the first failure re-opens it at once.

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

    def wait_ms(self, at_ms: int) -> int | None:
        """None when a call may go; otherwise how long until one may."""
        if at_ms < self.open_until_ms:
            return self.open_until_ms - at_ms
        return None

    def succeeded(self) -> None:
        self.failures_in_a_row, self.open_until_ms = 0, 0

    def failed(self, at_ms: int, threshold: int, cooldown_ms: int) -> bool:
        """Returns whether this opened the breaker. Calls that were already in flight when
        it opened do not extend the cool-down."""
        if at_ms < self.open_until_ms:
            return False
        self.failures_in_a_row += 1
        half_open = self.open_until_ms != 0
        if half_open or self.failures_in_a_row >= threshold:
            self.open_until_ms = at_ms + cooldown_ms
            return True
        return False


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
