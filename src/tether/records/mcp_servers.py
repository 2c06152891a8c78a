"""A remote MCP server registered for a project, and the tool definitions tether pinned
from its first listing (a changed description or schema is withheld until accepted)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

__all__ = ["McpServer", "ToolPin"]


@dataclass(slots=True)
class ToolPin:
    """``pinned``: the digest an operator accepted (None: the tool appeared after the first
    listing); ``seen``: the digest the server last listed."""

    pinned: str | None
    seen: str
    destructive: bool = False

    @property
    def withheld(self) -> bool:
        return self.pinned != self.seen


@dataclass(slots=True)
class McpServer:
    id: str
    project_id: str
    name: str
    url: str
    auth_kind: str
    created_at: int
    updated_at: int
    listed: bool = False
    tools: dict[str, ToolPin] = field(default_factory=dict)

    def pins_json(self) -> str:
        return json.dumps(
            {
                "listed": self.listed,
                "tools": {
                    name: {"pinned": p.pinned, "seen": p.seen, "destructive": p.destructive}
                    for name, p in sorted(self.tools.items())
                },
            }
        )

    @property
    def withheld(self) -> list[str]:
        return sorted(name for name, pin in self.tools.items() if pin.withheld)
