"""One audit event, as every front door and the admin API record it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tether.store.clock import new_id, now_ms

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

    def as_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ts": self.ts,
            "project_id": self.project_id,
            "agent_id": self.agent_id,
            "agent_name": self.agent_name,
            "session_id": self.session_id,
            "actor": self.actor,
            "source": self.source,
            "action": self.action,
            "resource": self.resource,
            "result": self.result,
            "code": self.code,
            "reason": self.reason,
            "attributes": json.dumps(self.attributes, separators=(",", ":"), default=str),
        }
