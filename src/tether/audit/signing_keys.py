"""tether's Ed25519 audit signing key: created once, stored sealed with the master key
(like every upstream credential), shared by all replicas through the database."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import select

from tether.audit.anchors import public_key_text
from tether.clock import now_ms
from tether.errors import Conflict
from tether.store.database import Database
from tether.store.schema import audit_signing_key
from tether.vault.sealed_box import SealedBox

__all__ = ["AuditSigningKeys"]

CONTEXT = "audit-signing-key"


class AuditSigningKeys:
    def __init__(self, db: Database, box: SealedBox) -> None:
        self._db = db
        self._box = box
        self._key: Ed25519PrivateKey | None = None

    async def key(self) -> Ed25519PrivateKey:
        """The key, created on first use; replicas racing to create it keep the first."""
        if self._key is None:
            self._key = await self._stored() or await self._create()
        return self._key

    async def _stored(self) -> Ed25519PrivateKey | None:
        async with self._db.read() as conn:
            row = (
                await conn.execute(
                    select(audit_signing_key.c.sealed_private_key).where(
                        audit_signing_key.c.id == 1
                    )
                )
            ).first()
        if row is None:
            return None
        raw = base64.b64decode(self._box.unseal(row[0], CONTEXT))
        return Ed25519PrivateKey.from_private_bytes(raw)

    async def _create(self) -> Ed25519PrivateKey:
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    audit_signing_key.insert().values(
                        id=1,
                        public_key=public_key_text(key.public_key()),
                        sealed_private_key=self._box.seal(base64.b64encode(raw).decode(), CONTEXT),
                        created_at=now_ms(),
                    )
                )
        except Conflict:
            stored = await self._stored()
            assert stored is not None
            return stored
        return key
