"""Streams in flight, so a kill reaches requests that were allowed before it.

On every change the feed delivers, each running stream is checked against the kill
switch again; a stream that should stop is cut by the callback its front door gave.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass

from tether.kill.switch import KillSwitch
from tether.records.verdicts import Deny
from tether.store.changes import Change

__all__ = ["InflightStreams", "StreamHandle"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class StreamHandle:
    agent_id: str
    project_id: str
    session_id: str | None
    cut: Callable[[Deny], None]
    cut_by: Deny | None = None


class InflightStreams:
    def __init__(self, switch: KillSwitch) -> None:
        self._switch = switch
        self._streams: dict[int, StreamHandle] = {}
        self._ids = itertools.count()

    def __len__(self) -> int:
        return len(self._streams)

    def register(self, handle: StreamHandle) -> int:
        """A door registers its stream once upstream answers, seconds after the call was
        allowed (a model's time to first token): a kill applied in between finds nothing
        to cut, and no later change may come to check the stream again, so it is checked
        here and cut at once."""
        token = next(self._ids)
        self._streams[token] = handle
        self._check(token, handle)
        return token

    def unregister(self, token: int) -> None:
        self._streams.pop(token, None)

    async def apply(self, _change: Change) -> None:
        self.enforce()

    def cut_all(self, verdict: Deny) -> int:
        """Cut every stream still running (a stop whose grace has run out)."""
        cut = 0
        for token, handle in list(self._streams.items()):
            if handle.cut_by is not None:
                continue
            handle.cut_by = verdict
            cut += 1
            try:
                handle.cut(verdict)
            except Exception:
                log.exception("cutting stream %s failed", token)
        return cut

    def enforce(self) -> None:
        for token, handle in list(self._streams.items()):
            if handle.cut_by is None:
                self._check(token, handle)

    def _check(self, token: int, handle: StreamHandle) -> None:
        verdict = self._switch.reason_to_stop(handle.agent_id, handle.project_id, handle.session_id)
        if verdict is None:
            return
        handle.cut_by = verdict
        try:
            handle.cut(verdict)
        except Exception:
            log.exception("cutting stream %s failed", token)
