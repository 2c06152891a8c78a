"""One audit event, as every front door and the admin API record it; ``AuditLog``
normalises it into a row (``tether.audit.normalise``) before it is stored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tether.clock import new_id, now_ms

__all__ = ["AuditEvent"]


@dataclass(slots=True)
class AuditEvent:
    actor: str
    source: str
    action: str
    resource: str
    result: str
    reason: str = ""
    code: str | None = None
    project_id: str | None = None
    agent_id: str | None = None
    agent_name: str | None = None
    session_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_id)
    ts: int = field(default_factory=now_ms)
