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

    async def get(self, project_id: str, provider: str) -> str | None:
        key = (project_id, provider)
        if key not in self._cache:
            self._cache[key] = await self._store.reveal(project_id, provider)
        return self._cache[key]

    async def apply(self, change: Change) -> None:
        if change.kind == "credential":
            for key in [k for k in self._cache if k[0] == change.ref]:
                del self._cache[key]
