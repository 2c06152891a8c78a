"""What a budget is, and which period of it a moment falls in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

__all__ = ["Budget", "BudgetPeriod", "BudgetScope", "PeriodWindow", "period_window"]


DEFAULT_THRESHOLDS = (50, 80, 100)
"""Alert at these percentages of a budget's limit unless told otherwise."""


class BudgetScope(StrEnum):
    PROJECT = "project"
    AGENT = "agent"
    SESSION = "session"


class BudgetPeriod(StrEnum):
    DAILY = "daily"
    MONTHLY = "monthly"
    SESSION = "session"
    """The lifetime of each session: a per-session limit applying to every session."""


@dataclass(frozen=True, slots=True)
class Budget:
    id: str
    project_id: str
    agent_id: str | None
    scope: BudgetScope
    period: BudgetPeriod
    limit_micros: int | None
    limit_tokens: int | None
    thresholds: tuple[int, ...]
    updated_by: str

    def describe(self, project_name: str, agent_name: str | None) -> str:
        if self.scope is BudgetScope.AGENT:
            return f"{self.period.value} budget of agent {agent_name!r}"
        if self.scope is BudgetScope.SESSION:
            return f"per-session budget of project {project_name!r}"
        return f"{self.period.value} budget of project {project_name!r}"


@dataclass(frozen=True, slots=True)
class PeriodWindow:
    key: str
    end_ms: int | None


_current: dict[tuple[BudgetPeriod, str], tuple[int, PeriodWindow]] = {}
"""Per calendar period and zone, the window last computed and when it started: every budgeted
call asks, and the answer changes once a day."""


def period_window(period: BudgetPeriod, timezone: str, session_id: str, at_ms: int) -> PeriodWindow:
    """Calendar periods in the project's time zone; the session period is the session."""
    if period is BudgetPeriod.SESSION:
        return PeriodWindow(f"session:{session_id}", None)
    known = _current.get((period, timezone))
    if known is not None and known[0] <= at_ms < (known[1].end_ms or 0):
        return known[1]
    window, start_ms = _calendar_window(period, timezone, at_ms)
    _current[(period, timezone)] = (start_ms, window)
    return window


def _calendar_window(period: BudgetPeriod, timezone: str, at_ms: int) -> tuple[PeriodWindow, int]:
    zone = ZoneInfo(timezone)
    local = datetime.fromtimestamp(at_ms / 1000, tz=UTC).astimezone(zone)
    if period is BudgetPeriod.DAILY:
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end = (start + timedelta(days=1, hours=2)).replace(hour=0)
        window = PeriodWindow(start.strftime("%Y-%m-%d"), int(end.timestamp() * 1000))
        return window, int(start.timestamp() * 1000)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return PeriodWindow(start.strftime("%Y-%m"), int(end.timestamp() * 1000)), int(
        start.timestamp() * 1000
    )
