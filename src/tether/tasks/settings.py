"""A project's drift settings, stored as one JSON document on the project (like guards).

Every warning is on by default; ``None`` turns one off. Unknown keys are ignored so older
replicas read newer documents.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from typing import Any

import orjson

__all__ = ["DriftSettings", "load_drift_settings"]


@dataclass(frozen=True, slots=True)
class DriftSettings:
    reinject_every_batches: int | None = 10
    """Put the task back in view every this many tool batches (PostToolBatch hooks)."""
    reinject_after_turns: int | None = 20
    """… and once the session has gone this many turns (model calls) without a checkpoint."""
    session_minutes: int | None = 180
    """Warn when a session with a task has run this long (wall time)."""
    context_fill_percent: int | None = 80
    """Warn when the latest request's input fills this much of the model's context window."""
    turns_without_checkpoint: int | None = 30
    """Warn after this many turns without a checkpoint."""
    remind: bool = True
    """After a warning, inject a reminder to write a checkpoint."""
    system_prompt: bool = False
    """Opt-in: the Messages gateway appends the task block to each request's ``system``
    (for agents without hooks: the Agent SDK, the raw API)."""

    def to_json(self) -> str:
        return orjson.dumps(asdict(self)).decode()

    def updated(self, changes: dict[str, Any]) -> DriftSettings:
        return replace(self, **changes)


@lru_cache(maxsize=256)
def load_drift_settings(document: str) -> DriftSettings:
    if not document:
        return DriftSettings()
    data = orjson.loads(document)
    known = {f.name for f in fields(DriftSettings)}
    return DriftSettings(**{k: v for k, v in data.items() if k in known})
