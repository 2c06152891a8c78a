"""Which approvals are asked once per intent: a deletion is grouped with the other
deletions of the same action under the same parent prefix in the same session while their
request is pending, so ``rm a b c`` or ``aws s3 rb --force`` asks a human once, not once
per object."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["GroupLocks", "group_prefix"]


GROUPED_KINDS = ("/", "arn:aws:s3:::")
"""Paths and S3 objects: where bulk deletions come from (``rm -r``, ``s3 rm --recursive``).
Other resources (roles, snapshots, alarms) are asked for one by one, as before."""


def group_prefix(resource: str) -> str | None:
    """The parent a deletion of ``resource`` is grouped under, or None when the parent is
    a root (``/``, a bucket ARN without a key), which is too broad to group, or the
    resource is not a path or an S3 object."""
    if not resource.startswith(GROUPED_KINDS):
        return None
    cut = resource.rfind("/")
    if cut <= 0:
        return None
    parent = resource[: cut + 1]
    stem = parent.rstrip("/")
    if not stem or stem.endswith(":"):
        return None
    return parent


class GroupLocks:
    """Serialises find-or-create of a group in this process, so a concurrent burst (the
    aws CLI sends ten deletions at once) joins one request instead of racing to open
    several."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        self._users: dict[tuple[str, str, str], int] = {}

    @asynccontextmanager
    async def hold(self, session_id: str, action: str, prefix: str) -> AsyncIterator[None]:
        key = (session_id, action, prefix)
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                del self._locks[key]
