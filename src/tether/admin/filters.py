"""Query-string filters shared by the admin listings: names in, ids out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tether.runtime import Runtime

__all__ = ["Scope", "scope_from_query"]


@dataclass(frozen=True, slots=True)
class Scope:
    project_id: str | None
    agent_id: str | None


async def scope_from_query(runtime: Runtime, query: Mapping[str, str]) -> Scope:
    """``?project=NAME`` and ``?agent=NAME`` as ids; an unknown name is a 404 naming it."""
    project = await runtime.projects.by_name(query["project"]) if "project" in query else None
    agent = await runtime.agents.by_name(query["agent"]) if "agent" in query else None
    return Scope(project.id if project else None, agent.id if agent else None)
