"""Slack interactivity: the app's signing secret (sealed, never shown again), which Slack
users may decide approvals as which operator in which project, and the request signatures
seen lately (so a captured request cannot be replayed, on any replica)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update

from tether.clock import new_id, now_ms
from tether.errors import Conflict, NotFound
from tether.store.database import Database
from tether.store.schema import slack_approvers, slack_seen_requests, slack_settings
from tether.vault.sealed_box import SealedBox

__all__ = ["SigningSecretInfo", "SlackApprover", "SlackStore"]

SETTINGS_ROW = "default"
SECRET_CONTEXT = "slack-signing-secret"


@dataclass(frozen=True, slots=True)
class SlackApprover:
    """Slack user ``user_id`` of workspace ``team_id`` decides ``project_id``'s approvals
    as the operator (admin token) named ``operator``."""

    id: str
    team_id: str
    user_id: str
    project_id: str
    operator: str
    created_at: int
    created_by: str


@dataclass(frozen=True, slots=True)
class SigningSecretInfo:
    """What may be shown about the signing secret: that it is set, when and by whom."""

    updated_at: int
    updated_by: str


def _approver(row: Any) -> SlackApprover:
    return SlackApprover(
        row.id,
        row.team_id,
        row.user_id,
        row.project_id,
        row.operator,
        row.created_at,
        row.created_by,
    )


class SlackStore:
    def __init__(self, db: Database, box: SealedBox) -> None:
        self._db = db
        self._box = box

    async def set_signing_secret(self, secret: str, by: str) -> SigningSecretInfo:
        sealed = self._box.seal(secret, SECRET_CONTEXT)
        ts = now_ms()
        async with self._db.write() as conn:
            changed = await conn.execute(
                update(slack_settings)
                .where(slack_settings.c.id == SETTINGS_ROW)
                .values(signing_secret_sealed=sealed, updated_at=ts, updated_by=by)
            )
            if changed.rowcount == 0:
                await conn.execute(
                    insert(slack_settings).values(
                        id=SETTINGS_ROW,
                        signing_secret_sealed=sealed,
                        updated_at=ts,
                        updated_by=by,
                    )
                )
        return SigningSecretInfo(ts, by)

    async def signing_secret_info(self) -> SigningSecretInfo | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(slack_settings.c.updated_at, slack_settings.c.updated_by).where(
                        slack_settings.c.id == SETTINGS_ROW
                    )
                )
            ).first()
        return SigningSecretInfo(row.updated_at, row.updated_by) if row else None

    async def signing_secret(self) -> str | None:
        """The plain secret, for verifying Slack's signatures only."""
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(slack_settings.c.signing_secret_sealed).where(
                        slack_settings.c.id == SETTINGS_ROW
                    )
                )
            ).first()
        return self._box.unseal(row.signing_secret_sealed, SECRET_CONTEXT) if row else None

    async def map_user(
        self, team_id: str, user_id: str, project_id: str, operator: str, by: str
    ) -> SlackApprover:
        approver = SlackApprover(new_id(), team_id, user_id, project_id, operator, now_ms(), by)
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    insert(slack_approvers).values(
                        id=approver.id,
                        team_id=team_id,
                        user_id=user_id,
                        project_id=project_id,
                        operator=operator,
                        created_at=approver.created_at,
                        created_by=by,
                    )
                )
        except Conflict:
            raise Conflict(
                f"Slack user {user_id} of team {team_id} is already mapped in this project; "
                "unmap it first to map it to another operator"
            ) from None
        return approver

    async def unmap_user(self, team_id: str, user_id: str, project_id: str) -> None:
        async with self._db.write() as conn:
            removed = await conn.execute(
                delete(slack_approvers).where(
                    slack_approvers.c.team_id == team_id,
                    slack_approvers.c.user_id == user_id,
                    slack_approvers.c.project_id == project_id,
                )
            )
        if removed.rowcount == 0:
            raise NotFound(f"Slack user {user_id} of team {team_id} is not mapped in this project")

    async def approvers(self, project_id: str | None = None) -> list[SlackApprover]:
        query = select(slack_approvers).order_by(
            slack_approvers.c.project_id, slack_approvers.c.team_id, slack_approvers.c.user_id
        )
        if project_id is not None:
            query = query.where(slack_approvers.c.project_id == project_id)
        async with self._db.read() as conn:
            return [_approver(r) for r in await conn.execute(query)]

    async def approver(self, team_id: str, user_id: str, project_id: str) -> SlackApprover | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(slack_approvers).where(
                        slack_approvers.c.team_id == team_id,
                        slack_approvers.c.user_id == user_id,
                        slack_approvers.c.project_id == project_id,
                    )
                )
            ).first()
        return _approver(row) if row else None

    async def first_sight(self, signature_hash: str, expires_at: int) -> bool:
        """Remember a request's signature until ``expires_at``; False if it was seen
        before (a replay). Lapsed ones are forgotten on the way."""
        ts = now_ms()
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    delete(slack_seen_requests).where(slack_seen_requests.c.expires_at < ts)
                )
                await conn.execute(
                    insert(slack_seen_requests).values(
                        signature_hash=signature_hash, expires_at=expires_at
                    )
                )
        except Conflict:
            return False
        return True
