"""The front doors' first check: a request without a valid agent key is refused from its
headers alone, before its body is read (a bogus key must not make tether buffer 32 MB).

Refusals are counted (``tether_unauthenticated_refusals``) and sampled into the audit
trail: at most one chained event per client address per ``sample_seconds``, carrying how
many refusals it stands for, so a flood of bad keys cannot grow the unprunable chain.
"""

from __future__ import annotations

import logging

from tether.audit.event import AuditEvent
from tether.audit.log import AuditLog
from tether.errors import AuthenticationFailed, TetherError
from tether.identity.directory import Directory
from tether.identity.refusal_windows import RefusalWindows
from tether.metrics.instruments import TetherMetrics

__all__ = ["Doorkeeper"]

log = logging.getLogger(__name__)

UNKNOWN_PEER = "unknown"
MISSING = "no agent key: send it as 'Authorization: Bearer tth_…' or 'x-api-key'"


class Doorkeeper:
    def __init__(
        self,
        directory: Directory,
        audit: AuditLog,
        metrics: TetherMetrics,
        sample_seconds: float = 60.0,
    ) -> None:
        self._directory = directory
        self._audit = audit
        self._metrics = metrics
        self._windows = RefusalWindows(sample_seconds)

    async def admit(self, credential: str | None, door: str, peer: str) -> None:
        """Return if ``credential`` is a live agent key; raise ``AuthenticationFailed``
        (after counting the refusal) otherwise."""
        try:
            if not credential:
                raise AuthenticationFailed(MISSING, code="missing_credentials")
            await self._directory.identify_agent(credential, peer if peer != UNKNOWN_PEER else None)
        except AuthenticationFailed as refusal:
            self._metrics.refused(door, refusal.code)
            await self._sample(refusal, door, peer)
            raise

    async def refused(self, code: str, door: str, peer: str) -> None:
        """A refusal a front door decided itself (a signature that does not verify)."""
        refusal = AuthenticationFailed(f"refused: {code}", code=code)
        self._metrics.refused(door, code)
        await self._sample(refusal, door, peer)

    async def _sample(self, refusal: AuthenticationFailed, door: str, peer: str) -> None:
        window = self._windows.due(peer, refusal.code)
        if window is None:
            return
        event = AuditEvent(
            actor="agent:unidentified",
            source=door,
            action="auth:refused",
            resource=f"peer:{peer}",
            result="deny",
            code=refusal.code,
            reason=self._windows.sampled(window["refused"], peer, "a valid agent key"),
            attributes={**window, "door": door},
        )
        try:
            await self._audit.record_many([event], urgent=False)
        except TetherError as exc:
            log.warning("a sampled refusal was not recorded: %s", exc.message)
