"""Admin API models for a project's runaway-loop guards."""

from __future__ import annotations

from dataclasses import asdict

from pydantic import BaseModel, ConfigDict, Field

from tether.admin.patches import not_null
from tether.admin.schemas import Strict
from tether.guards.settings import GuardSettings, OnTrip

__all__ = ["GuardsOut", "GuardsUpdate"]

OFF = "; null turns this guard off"


class GuardsUpdate(Strict):
    """Only the fields sent change; an empty object is refused (nothing to change)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    repeat_limit: int | None = Field(
        None, ge=1, le=100_000, description="the same call at most this many times per window" + OFF
    )
    repeat_window_seconds: int | None = Field(None, ge=1, le=86_400, json_schema_extra=not_null)
    tool_repeat_limit: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="the same tool call with the same result at most this many times per "
        "session" + OFF,
    )
    max_retries: int | None = Field(
        None, ge=0, le=1000, description="retries of one request, failed calls in a row" + OFF
    )
    stall_calls: int | None = Field(
        None, ge=1, le=100_000, description="model calls in a row that ask for nothing new" + OFF
    )
    stall_minutes: int | None = Field(
        None, ge=1, le=10_080, description="minutes of calls without any new tool result" + OFF
    )
    breaker_failures: int | None = Field(
        None, ge=1, le=10_000, description="upstream 429/5xx in a row before failing fast" + OFF
    )
    breaker_cooldown_seconds: int | None = Field(None, ge=1, le=3600, json_schema_extra=not_null)
    breaker_max_cooldown_seconds: int | None = Field(
        None, ge=1, le=86_400, json_schema_extra=not_null
    )
    require_hooks: bool | None = Field(
        None,
        description="refuse tool results no PreToolUse hook asked tether about",
        json_schema_extra=not_null,
    )
    on_trip: OnTrip | None = Field(
        None,
        description="beyond refusing the call: deny (nothing more), pause or terminate",
        json_schema_extra=not_null,
    )


class GuardsOut(BaseModel):
    project: str
    repeat_limit: int | None
    repeat_window_seconds: int
    tool_repeat_limit: int | None
    max_retries: int | None
    stall_calls: int | None
    stall_minutes: int | None
    breaker_failures: int | None
    breaker_cooldown_seconds: int
    breaker_max_cooldown_seconds: int
    require_hooks: bool
    on_trip: OnTrip

    @classmethod
    def of(cls, project: str, settings: GuardSettings) -> GuardsOut:
        return cls(project=project, **asdict(settings))
