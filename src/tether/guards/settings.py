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
    """The same call (or the same tool call asked for by the model) at most this many times
    in ``repeat_window_seconds`` per session."""
    repeat_window_seconds: int = 300
    max_retries: int | None = 10
    """Retries of one request (``X-Stainless-Retry-Count``); failed calls in a row per session."""
    stall_calls: int | None = 100
    """Model calls in a row in which the model asked for nothing it had not asked before."""
    breaker_failures: int | None = 5
    """Upstream 429/5xx answers in a row for the project before calls fail fast."""
    breaker_cooldown_seconds: int = 10
    """How long the breaker stays open when upstream gave no ``retry-after``."""
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
