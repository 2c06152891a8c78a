"""Keeps signed anchors without anyone copying them by hand: every
``TETHER_AUDIT_ANCHOR_EVERY`` it signs the chain head (when it moved) and writes the anchor
to the operator's destination (``TETHER_AUDIT_ANCHOR_DEST``). Replicas may each write one
for the same head; anchors are named by event number and time, so nothing is overwritten."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from tether.audit.anchors import ANCHOR_PREFIX, Anchor, sign_anchor
from tether.audit.chain import ChainHead
from tether.audit.destinations import Destination
from tether.audit.signing_keys import AuditSigningKeys
from tether.audit.table import AuditStore
from tether.clock import now_ms

__all__ = ["AnchorKeeper"]

log = logging.getLogger(__name__)


class AnchorKeeper:
    def __init__(
        self,
        store: AuditStore,
        keys: AuditSigningKeys,
        destination: Destination,
        every_seconds: float,
        on_written: Callable[[Anchor], None] | None = None,
        on_failed: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._keys = keys
        self._destination = destination
        self._every = every_seconds
        self._on_written = on_written
        self._on_failed = on_failed
        self._last: ChainHead | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep_forever(), name="audit-anchor-keeper")

    async def stop(self) -> None:
        """One last anchor of the head as it is at shutdown, then stop."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        with contextlib.suppress(Exception):
            await self.anchor_now()

    async def anchor_now(
        self, head: ChainHead | None = None, reason: str = "scheduled"
    ) -> Anchor | None:
        """Sign and write ``head`` (the chain head by default); None if it did not move."""
        head = head or await self._store.chain_head()
        if head.seq == 0 or (reason == "scheduled" and head == self._last):
            return None
        anchor = sign_anchor(await self._keys.key(), head, now_ms(), reason)
        await asyncio.to_thread(self._destination.write, anchor.name, anchor.to_json())
        if reason == "scheduled":
            self._last = head
        if self._on_written is not None:
            self._on_written(anchor)
        return anchor

    async def latest(self) -> Anchor | None:
        """The newest anchor at the destination (highest event number), read from there
        rather than remembered: it is what survives a restart and what an operator holds."""
        return await asyncio.to_thread(_latest_at, self._destination)

    async def _keep_forever(self) -> None:
        while True:
            try:
                await self.anchor_now()
            except Exception:
                log.exception("the audit anchor could not be written; retrying next time")
                if self._on_failed is not None:
                    self._on_failed()
            await asyncio.sleep(self._every)


def _seq_of(name: str) -> tuple[int, int]:
    """``anchors/YYYY/MM/DD/SEQ-TS.json`` → (SEQ, TS); (-1, -1) for any other name."""
    stem = name.rsplit("/", 1)[-1].removesuffix(".json")
    seq, _, ts = stem.partition("-")
    return (int(seq), int(ts)) if seq.isdigit() and ts.isdigit() else (-1, -1)


def _latest_at(destination: Destination) -> Anchor | None:
    names = [n for n in destination.names(ANCHOR_PREFIX) if _seq_of(n)[0] >= 0]
    if not names:
        return None
    name = max(names, key=_seq_of)
    raw = destination.read(name)
    return Anchor.from_json(raw, name) if raw else None
