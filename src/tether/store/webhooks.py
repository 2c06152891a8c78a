"""Where a project's alerts go: Slack-compatible incoming webhooks and signed generic ones.

URLs are sealed at rest (a Slack URL is a credential); the ``url`` column and every
listing hold only the masked form, and only the dispatcher unseals the real one."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import delete, insert, select

from tether.clock import new_id, now_ms
from tether.errors import NotFound
from tether.store.database import Database
from tether.store.schema import webhooks
from tether.vault.sealed_box import SealedBox
from tether.vault.webhook_urls import masked_url, url_context

__all__ = ["Webhook", "WebhookStore"]


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    project_id: str
    kind: str
    url: str
    """Masked (scheme and host) except in what ``WebhookStore.get`` returns."""
    has_secret: bool
    created_at: int
    created_by: str


def _webhook(row: Any) -> Webhook:
    return Webhook(
        row.id,
        row.project_id,
        row.kind,
        row.url,
        row.secret_sealed is not None,
        row.created_at,
        row.created_by,
    )


def _context(webhook_id: str) -> str:
    return f"webhook:{webhook_id}"


class WebhookStore:
    def __init__(self, db: Database, box: SealedBox) -> None:
        self._db = db
        self._box = box

    async def add(
        self, project_id: str, kind: str, url: str, secret: str | None, by: str
    ) -> Webhook:
        webhook_id = new_id()
        sealed = self._box.seal(secret, _context(webhook_id)) if secret else None
        async with self._db.write() as conn:
            await conn.execute(
                insert(webhooks).values(
                    id=webhook_id,
                    project_id=project_id,
                    kind=kind,
                    url=masked_url(url),
                    url_sealed=self._box.seal(url, url_context(webhook_id)),
                    secret_sealed=sealed,
                    created_at=now_ms(),
                    created_by=by,
                )
            )
            row = (await conn.execute(select(webhooks).where(webhooks.c.id == webhook_id))).one()
        return _webhook(row)

    async def of_project(self, project_id: str) -> list[Webhook]:
        async with self._db.read() as conn:
            rows = await conn.execute(select(webhooks).where(webhooks.c.project_id == project_id))
        return [_webhook(r) for r in rows]

    async def get(self, webhook_id: str) -> tuple[Webhook, str | None] | None:
        """The webhook with its real URL, and its signing secret: for the dispatcher only."""
        async with self._db.read() as conn:
            row = (await conn.execute(select(webhooks).where(webhooks.c.id == webhook_id))).first()
        if row is None:
            return None
        secret = (
            self._box.unseal(bytes(row.secret_sealed), _context(row.id))
            if row.secret_sealed
            else None
        )
        url = self._box.unseal(bytes(row.url_sealed), url_context(row.id))
        return replace(_webhook(row), url=url), secret

    async def delete(self, project_id: str, webhook_id: str) -> None:
        async with self._db.write() as conn:
            result = await conn.execute(
                delete(webhooks).where(
                    webhooks.c.id == webhook_id, webhooks.c.project_id == project_id
                )
            )
        if not result.rowcount:
            raise NotFound(f"no webhook {webhook_id!r} in this project")
