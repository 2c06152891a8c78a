"""Upstream credentials as the forwarder needs them: decrypted once, held in memory,
dropped when the change feed says a project's credential changed."""

from __future__ import annotations

from tether.store.changes import Change
from tether.store.credentials import CredentialStore

__all__ = ["UpstreamKeys"]


class UpstreamKeys:
    def __init__(self, store: CredentialStore) -> None:
        self._store = store
        self._cache: dict[tuple[str, str], str | None] = {}
        self._changes = 0
        """Credential changes applied so far: a read that one overtook is not cached."""

    async def get(self, project_id: str, provider: str) -> str | None:
        """A rotation applied while the old credential was being read must not put the
        old one back in the cache, where it would stay until the next change."""
        key = (project_id, provider)
        if key in self._cache:
            return self._cache[key]
        changes = self._changes
        secret = await self._store.reveal(project_id, provider)
        if self._changes == changes:
            self._cache[key] = secret
        return secret

    async def apply(self, change: Change) -> None:
        if change.kind == "credential":
            self._changes += 1
            for key in [k for k in self._cache if k[0] == change.ref]:
                del self._cache[key]
