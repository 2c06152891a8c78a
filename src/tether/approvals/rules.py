"""When an action needs a human approval, in one place: the pipeline's approval stage and
the policy test endpoint both ask here."""

from __future__ import annotations

from tether.policy.actions import classify
from tether.records.fleet import Project

__all__ = ["approval_reason"]


def approval_reason(
    action: str, project: Project, asked: str | None, destructive: bool = False
) -> str | None:
    """``asked``: the reason an ``@ask`` rule (or the unknown-command default) gave;
    ``destructive``: the tool says it destroys (MCP ``destructiveHint``)."""
    if asked:
        return asked
    if project.deletion_approval and destructive:
        return f"{action} is annotated destructive, and every deletion needs a human approval"
    if project.deletion_approval and classify(action).is_deletion:
        return f"{action} is a deletion, and every deletion needs a human approval"
    return None
