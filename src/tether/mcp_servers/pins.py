"""Pinned tool definitions: a tool's name, description and input schema as first listed.

A later listing whose description or schema differs, or a tool that was not in the first
listing, is withheld until an operator accepts it: a changed description is how tool
poisoning reaches a model, and a rename (a removal and a new tool) must not get around it.
A tool once listed as destructive stays destructive (its calls wait for a human) however
it is listed later: a server dropping ``destructiveHint`` must not drop the approval.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tether.records.mcp_servers import McpServer, ToolPin

__all__ = ["definition_digest", "is_destructive", "pin_listing"]


def definition_digest(tool: dict[str, Any]) -> str:
    text = json.dumps(
        [tool.get("name"), tool.get("description"), tool.get("inputSchema")],
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def is_destructive(tool: dict[str, Any]) -> bool:
    annotations = tool.get("annotations")
    return isinstance(annotations, dict) and annotations.get("destructiveHint") is True


def pin_listing(server: McpServer, tools: list[dict[str, Any]]) -> tuple[bool, list[str]]:
    """Updates ``server``'s pins from a listing; returns whether they changed and the
    tools withheld by this listing that were not withheld before (to alert on)."""
    changed, newly_withheld = False, []
    first = not server.listed
    for tool in tools:
        name = tool.get("name")
        if not isinstance(name, str):
            continue
        seen = definition_digest(tool)
        destructive = is_destructive(tool)
        pin = server.tools.get(name)
        if pin is None:
            pin = server.tools[name] = ToolPin(seen if first else None, seen, destructive)
            changed = True
            if pin.withheld:
                newly_withheld.append(name)
            continue
        if pin.seen != seen or (destructive and not pin.destructive):
            was_withheld = pin.withheld
            pin.seen, pin.destructive = seen, pin.destructive or destructive
            changed = True
            if pin.withheld and not was_withheld:
                newly_withheld.append(name)
    if first:
        server.listed = changed = True
    return changed, newly_withheld
