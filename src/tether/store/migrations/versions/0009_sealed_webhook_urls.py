"""sealed webhook urls

Webhook URLs move into ``url_sealed`` (AES-GCM under the master key, bound to the
webhook's id); ``url`` keeps only the masked form (scheme and host) for listings.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tether.vault.sealed_box import SealedBox

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from tether.vault.webhook_urls import masked_url, url_context

    bind = op.get_bind()
    webhooks = sa.table("webhooks", sa.column("id"), sa.column("url"), sa.column("url_sealed"))
    rows = bind.execute(sa.select(webhooks.c.id, webhooks.c.url)).all()
    config = op.get_context().config
    box: SealedBox | None = config.attributes.get("sealed_box") if config else None
    if rows and box is None:
        raise RuntimeError(
            "sealing the stored webhook URLs needs the master key; start tether to migrate"
        )
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("url_sealed", sa.LargeBinary(), nullable=True))
    for webhook_id, url in rows:
        assert box is not None
        bind.execute(
            webhooks.update()
            .where(webhooks.c.id == webhook_id)
            .values(url_sealed=box.seal(url, url_context(webhook_id)), url=masked_url(url))
        )


def downgrade() -> None:
    with op.batch_alter_table("webhooks", schema=None) as batch_op:
        batch_op.drop_column("url_sealed")
