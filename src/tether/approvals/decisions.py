"""Approving and denying, whoever decides and wherever (the admin API, the dashboard
through it, a Slack button): the grant narrowed and checked once, the decision written to
the audit trail under the session that asked, with who decided and through what."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tether.audit.event import AuditEvent
from tether.audit.log import AuditLog
from tether.errors import BadRequest
from tether.identity.directory import Directory
from tether.store.approvals import ApprovalRecord, ApprovalStore

__all__ = ["ApprovalDecider", "Decider", "GrantAsked"]

DEFAULT_TTL_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class GrantAsked:
    """What the approver chose; None everywhere: what was asked."""

    ttl_seconds: int | None = None
    max_uses: int | None = None
    prefix: str | None = None


@dataclass(frozen=True, slots=True)
class Decider:
    """Who decides: ``actor`` as the audit trail names operators (``admin:NAME``),
    ``source`` the door (``admin``, ``slack``), ``attributes`` what that door knows."""

    actor: str
    source: str = "admin"
    attributes: dict[str, Any] = field(default_factory=dict)


def narrowed(
    record: ApprovalRecord, asked: GrantAsked, asked_ttl: int
) -> tuple[int, int | None, str | None]:
    """The grant the approver chose: what was asked, or narrower — never wider."""
    ttl = asked.ttl_seconds or asked_ttl
    if not record.grouped:
        if asked.max_uses not in (None, 1) or asked.prefix is not None:
            raise BadRequest(
                f"approval {record.id} is for one action on one resource; --max and --prefix "
                "apply only to a group (one with a prefix)"
            )
        return ttl, None, None
    assert record.scope_prefix is not None
    if asked.ttl_seconds is not None and asked.ttl_seconds > asked_ttl:
        raise BadRequest(
            f"ttl_seconds {asked.ttl_seconds} is longer than the {asked_ttl} s asked; "
            "an approver may shorten a group's grant, not lengthen it"
        )
    if asked.max_uses is not None and asked.max_uses > record.item_count:
        raise BadRequest(
            f"max_uses {asked.max_uses} is more than the {record.item_count} actions "
            f"asked under {record.scope_prefix}; use {record.item_count} or fewer"
        )
    if asked.prefix is not None and not asked.prefix.startswith(record.scope_prefix):
        raise BadRequest(
            f"prefix {asked.prefix!r} is not under the asked prefix "
            f"{record.scope_prefix!r}; an approver may narrow it, not widen it"
        )
    if asked.prefix is None and record.item_count == 1:
        return ttl, None, None  # a group of one: decided as that one action (store.decide)
    return ttl, asked.max_uses or record.item_count, asked.prefix or record.scope_prefix


class ApprovalDecider:
    def __init__(self, approvals: ApprovalStore, directory: Directory, audit: AuditLog) -> None:
        self._approvals = approvals
        self._directory = directory
        self._audit = audit

    async def approve(
        self, approval_id: str, by: Decider, reason: str = "", asked: GrantAsked | None = None
    ) -> ApprovalRecord:
        record = await self._approvals.get(approval_id)
        project = self._directory.project(record.project_id)
        ttl, max_uses, prefix = narrowed(
            record,
            asked or GrantAsked(),
            project.approval_ttl_seconds if project else DEFAULT_TTL_SECONDS,
        )
        decided = await self._approvals.decide(
            record.id, True, by.actor, reason, ttl * 1000, max_uses, prefix
        )
        await self._record(decided, by)
        return decided

    async def deny(self, approval_id: str, by: Decider, reason: str) -> ApprovalRecord:
        decided = await self._approvals.decide(approval_id, False, by.actor, reason, 0)
        await self._record(decided, by)
        return decided

    async def _record(self, record: ApprovalRecord, by: Decider) -> None:
        agent = self._directory.agent(record.agent_id)
        await self._audit.record(
            AuditEvent(
                actor=by.actor,
                source=by.source,
                action=f"approval:{record.state}",
                resource=record.resource,
                result=record.state,
                reason=record.decision_reason or "",
                project_id=record.project_id,
                agent_id=record.agent_id,
                agent_name=agent.name if agent else None,
                session_id=record.session_id,
                attributes={"approval_id": record.id, "action": record.action, **by.attributes},
            )
        )
