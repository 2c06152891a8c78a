"""Reading a ``tether drill --json`` report in a test that is not about speed."""

from __future__ import annotations

from typing import Any

from tether.readiness.drills import TARGET_SECONDS

__all__ = ["passed_but_for_time"]


def passed_but_for_time(kind: str, report: dict[str, Any]) -> bool:
    """The drill passed, or failed on its time target alone: the drill checks that target
    last, only when all else passed. Speed is the benchmarks' to measure, and a loaded CI
    machine took 1.8 s for a drill across two replicas (the target is 1 s)."""
    if report["ok"]:
        return True
    slow = f"slower than the {TARGET_SECONDS[kind]} s target"
    return bool(report["notes"]) and str(report["notes"][-1]).endswith(slow)
