"""Who a request acted for, noted by the pipeline and read by the access log, without
threading it through every front door: one mutable record per request, in a context
variable the request's task sees."""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field

__all__ = ["RequestScope", "current_scope", "note_identity"]


@dataclass(slots=True)
class RequestScope:
    agent: str | None = None
    session: str | None = None
    started: float = field(default_factory=time.perf_counter)
    """When the request's handling began: the access line's duration is timed from here,
    since the event loop's own clock (uvloop's) counts whole milliseconds."""


current_scope: ContextVar[RequestScope | None] = ContextVar("tether_request_scope", default=None)


def note_identity(agent: str | None, session: str | None) -> None:
    """No-op outside a request (benchmarks, tests calling the pipeline directly)."""
    scope = current_scope.get()
    if scope is None:
        return
    scope.agent = agent or scope.agent
    scope.session = session or scope.session
