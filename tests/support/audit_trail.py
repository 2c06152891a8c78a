"""Reading the audit trail as a test waits for it: completion events are written after
the answer is sent, so a test polls for them."""

from __future__ import annotations

import time
from typing import Any

from tests.support.server import RunningTether


def written(tether: RunningTether, session: str, action: str, count: int) -> list[dict[str, Any]]:
    """The session's ``action`` events, once at least ``count`` are written (30 s)."""
    deadline = time.monotonic() + 30
    while True:
        events = tether.call("GET", "/audit", params={"session": session}).json()
        found = [e for e in events if e["action"] == action]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{len(found)} of {count} {action} events written"
        time.sleep(0.05)
