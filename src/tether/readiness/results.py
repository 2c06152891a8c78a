"""What a readiness check answers: pass / warn / fail, the evidence, the fixing command."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["CheckResult", "Status", "worst"]


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"

    @property
    def score(self) -> float:
        """The value of ``tether_readiness``: 1 pass, 0.5 warn, 0 fail."""
        return {Status.PASS: 1.0, Status.WARN: 0.5, Status.FAIL: 0.0}[self]


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: str
    status: Status
    evidence: str
    fix: str = ""


def worst(*statuses: Status) -> Status:
    order = [Status.PASS, Status.WARN, Status.FAIL]
    return max(statuses, key=order.index, default=Status.PASS)
