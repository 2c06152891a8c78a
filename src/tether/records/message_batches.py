"""A message batch tether relayed: its agent, session and budget reservation, so its
results can be settled and a kill can cancel it, whichever process handles that."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BatchRecord"]


@dataclass(frozen=True, slots=True)
class BatchRecord:
    id: str
    project_id: str
    agent_id: str
    session_id: str | None
    reservation_id: str | None
    holds: list[dict[str, Any]]
    """The reservation's holds: ``budget_id``, ``period_key``, ``period_end``, ``micros``,
    ``tokens`` (see ``budgets.batches``)."""
    models: list[str]
    reserved_micros: int
    created_at: int
    canceled_at: int | None = None
    settled_at: int | None = None
    settled_micros: int | None = None
