"""Where the guards keep what they remember: a session's calls (``SessionWatch``) and a
project's circuit breaker. One process keeps them in its own memory; several processes
(``tether up --workers N``, replicas) keep them in Redis, so every process sees every call
of a session and a loop trips at the same call wherever its requests land.

A change is a function of the session's watch and, when asked for, the project's breaker.
In memory it runs once, in place. On Redis it may run more than once (on a fresh copy each
time) and must have no other effect: side effects come after ``update`` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from tether.guards.breaker import CircuitBreaker, CircuitBreakers
from tether.guards.watches import MAX_SESSIONS, SessionWatch, SessionWatches

__all__ = ["Change", "GuardMemory", "LocalGuardMemory"]

R = TypeVar("R")
Change = Callable[[SessionWatch, CircuitBreaker | None], R]


class GuardMemory(Protocol):
    async def update(
        self, session_id: str, at_ms: int, change: Change[R], breaker_of: str | None = None
    ) -> R:
        """Apply ``change`` to the session's watch (and to the breaker of project
        ``breaker_of``, else None) atomically; its result is returned. Raises
        ``SharedStateUnavailable`` when the state cannot be read or written."""
        ...

    def open_breakers(self, at_ms: int) -> int:
        """Projects whose calls fail fast now, as far as this process knows."""
        ...

    def remembered(self) -> int:
        """Sessions whose state this process holds in memory."""
        ...

    async def ping(self) -> None:
        """Raises ``SharedStateUnavailable`` when the state does not answer (readiness)."""
        ...

    async def close(self) -> None: ...


class LocalGuardMemory:
    """This process's memory: bounded, least recently used sessions forgotten."""

    def __init__(self, sessions_kept: int = MAX_SESSIONS) -> None:
        self.watches = SessionWatches(sessions_kept)
        self.breakers = CircuitBreakers()

    async def update(
        self, session_id: str, at_ms: int, change: Change[R], breaker_of: str | None = None
    ) -> R:
        breaker = None if breaker_of is None else self.breakers.of(breaker_of)
        return change(self.watches.of(session_id, at_ms), breaker)

    def open_breakers(self, at_ms: int) -> int:
        return self.breakers.open_count(at_ms)

    def remembered(self) -> int:
        return len(self.watches)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
