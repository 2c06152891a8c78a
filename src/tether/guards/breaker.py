"""A circuit breaker per project on its upstream: after a run of 429/5xx answers, calls
fail fast for a cool-down (upstream's ``retry-after`` when it gave one), then one probe
call decides whether traffic resumes."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CircuitBreaker", "CircuitBreakers"]

PROBE_TIMEOUT_MS = 60_000


@dataclass(slots=True)
class CircuitBreaker:
    failures_in_a_row: int = 0
    open_until_ms: int = 0
    probe_started_ms: int | None = None

    def wait_ms(self, at_ms: int) -> int | None:
        """None when a call may go; otherwise how long until one may. Past the cool-down,
        the first caller becomes the probe."""
        if self.open_until_ms == 0:
            return None
        if at_ms < self.open_until_ms:
            return self.open_until_ms - at_ms
        if self.probe_started_ms is not None and at_ms - self.probe_started_ms < PROBE_TIMEOUT_MS:
            return 1000
        self.probe_started_ms = at_ms
        return None

    def succeeded(self) -> bool:
        """Returns whether this closed an open breaker."""
        was_open = self.open_until_ms != 0
        self.failures_in_a_row, self.open_until_ms, self.probe_started_ms = 0, 0, None
        return was_open

    def failed(self, at_ms: int, threshold: int, cooldown_ms: int) -> bool:
        """Returns whether this opened the breaker (or re-opened it after a failed probe)."""
        self.failures_in_a_row += 1
        probing = self.probe_started_ms is not None
        if probing or (self.open_until_ms == 0 and self.failures_in_a_row >= threshold):
            self.open_until_ms = at_ms + cooldown_ms
            self.probe_started_ms = None
            return True
        return False


class CircuitBreakers:
    def __init__(self) -> None:
        self._by_project: dict[str, CircuitBreaker] = {}

    def of(self, project_id: str) -> CircuitBreaker:
        breaker = self._by_project.get(project_id)
        if breaker is None:
            breaker = self._by_project[project_id] = CircuitBreaker()
        return breaker
