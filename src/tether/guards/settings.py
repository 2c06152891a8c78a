"""A project's guard thresholds, stored as one JSON document on the project.

Every guard is on by default with thresholds no healthy agent reaches; ``None`` turns one
off. Unknown keys in a stored document are ignored so older replicas read newer documents.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from functools import lru_cache
from typing import Any

import orjson

__all__ = ["GuardSettings", "OnTrip", "load_guard_settings"]


class OnTrip(StrEnum):
    """What a tripped guard does beyond refusing the call that tripped it."""

    DENY = "deny"
    PAUSE = "pause"
    TERMINATE = "terminate"


@dataclass(frozen=True, slots=True)
class GuardSettings:
    repeat_limit: int | None = 20
    """The same request (byte-identical body; the same action on the same resource) at most
    this many times in ``repeat_window_seconds`` per session: a fast retry storm."""
    repeat_window_seconds: int = 300
    tool_repeat_limit: int | None = 5
    """The same tool call (tool, input) that gave the same result this many times in a
    session is not run again, whatever the pace: the 73-retries-over-19-minutes loop."""
    max_retries: int | None = 10
    """Retries of one request (``X-Stainless-Retry-Count``); failed calls in a row per session."""
    stall_calls: int | None = 100
    """Model calls in a row in which the model asked for nothing it had not asked before."""
    stall_minutes: int | None = 10
    """Minutes a session may keep calling without any new (tool, input, result)."""
    breaker_failures: int | None = 2
    """Upstream 429/5xx answers in a row for the project before calls fail fast."""
    breaker_cooldown_seconds: int = 60
    """How long the breaker stays open the first time; doubled at each re-opening, up to
    ``breaker_max_cooldown_seconds``, and never shorter than upstream's ``retry-after``."""
    breaker_max_cooldown_seconds: int = 600
    require_hooks: bool = False
    """Refuse a model call carrying a tool result that no PreToolUse hook asked tether
    about: the agent ran a tool with its hooks off, unreachable or bypassed."""
    on_trip: OnTrip = OnTrip.DENY

    def to_json(self) -> str:
        return orjson.dumps(asdict(self)).decode()

    def updated(self, changes: dict[str, Any]) -> GuardSettings:
        if "on_trip" in changes:
            changes = {**changes, "on_trip": OnTrip(changes["on_trip"])}
        return replace(self, **changes)


@lru_cache(maxsize=1024)
def load_guard_settings(text: str | None) -> GuardSettings:
    """Parsed once per distinct document: the hot path calls this for every request."""
    if not text:
        return GuardSettings()
    stored = orjson.loads(text)
    known = {f.name for f in fields(GuardSettings)}
    return GuardSettings().updated({k: v for k, v in stored.items() if k in known})
