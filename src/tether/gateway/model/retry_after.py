"""``retry-after`` as Claude Code's gateway contract wants it: whole seconds, at most 60.

Claude Code gives up on a wait longer than 60 s instead of retrying, and the SDKs prefer
``retry-after-ms`` when present; so every ``retry-after`` tether sends or relays is whole
seconds in 1..60, and upstream's ``retry-after-ms`` is folded into it.
"""

from __future__ import annotations

import math
import time
from email.utils import parsedate_to_datetime

__all__ = ["MAX_RETRY_AFTER_SECONDS", "relayed_retry_after", "retry_after_header"]

MAX_RETRY_AFTER_SECONDS = 60


def retry_after_header(seconds: float) -> str:
    """``seconds`` as a ``retry-after`` value: rounded up, at least 1, at most 60 (a longer
    wait is asked again when the agent comes back)."""
    if not math.isfinite(seconds):
        return str(MAX_RETRY_AFTER_SECONDS)
    return str(min(MAX_RETRY_AFTER_SECONDS, max(1, math.ceil(seconds))))


def relayed_retry_after(retry_after: str | None, retry_after_ms: str | None) -> str | None:
    """Upstream's wait (``retry-after`` as seconds or an HTTP date, ``retry-after-ms``) as
    one ``retry-after`` value; None when upstream gave none that can be read."""
    waits = [w for w in (_seconds(retry_after), _milliseconds(retry_after_ms)) if w is not None]
    return retry_after_header(max(waits)) if waits else None


def _seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _milliseconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value) / 1000)
    except ValueError:
        return None
