"""The audit-trail readiness check: the trail verifies, is exported to storage the
operator owns, and signed anchors of it are recent. Bounded however long the trail is:
the newest ``TAIL_EVENTS`` are walked here, the whole chain by ``GET /audit/verify``
(whose outcome is an ``audit:verify`` event this check reads)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tether.audit.trail_events import AUDIT_EXPORTED, AUDIT_VERIFIED
from tether.clock import now_ms
from tether.readiness.results import CheckResult, Status, worst
from tether.store.readiness import ReadinessQueries

if TYPE_CHECKING:
    from tether.runtime import Runtime

__all__ = ["EXPORT_MAX_AGE_MS", "TAIL_EVENTS", "audit_trail"]

TAIL_EVENTS = 1_000
EXPORT_MAX_AGE_MS = 7 * 86_400_000
ANCHOR_SLACK_MS = 600_000
"""An anchor is recent when younger than twice TETHER_AUDIT_ANCHOR_EVERY plus this."""


async def audit_trail(runtime: Runtime) -> CheckResult:
    """The same for every project: the trail is the deployment's, one chain."""
    queries = ReadinessQueries(runtime.db)
    statuses: list[Status] = []
    evidence: list[str] = []
    fixes: list[str] = []
    tail = await runtime.audit_store.verify_tail(TAIL_EVENTS)
    if tail.first_break is not None:
        statuses.append(Status.FAIL)
        evidence.append(
            f"the newest events do not verify: #{tail.first_break.seq}: {tail.first_break.problem}"
        )
        fixes.append("tether audit verify")
    else:
        evidence.append(f"the newest {tail.checked} events verify")
    checked = await queries.last_event(None, AUDIT_VERIFIED, "ok")
    failed = await queries.last_event(None, AUDIT_VERIFIED, "error")
    if failed is not None and (checked is None or failed["ts"] > checked["ts"]):
        statuses.append(Status.FAIL)
        evidence.append(f"the last whole-chain verification failed: {failed['reason']}")
        fixes.append("tether audit verify")
    exported = await queries.last_event(None, AUDIT_EXPORTED, "ok")
    if exported is None or exported["ts"] < now_ms() - EXPORT_MAX_AGE_MS:
        statuses.append(Status.WARN)
        evidence.append(
            "no export to storage you own in 7 days"
            if exported is None
            else f"the last export is {_days(exported['ts'])} old"
        )
        fixes.append("tether audit export --dest s3://BUCKET/PREFIX (daily, from cron)")
    else:
        evidence.append(f"exported {_days(exported['ts'])} ago ({exported['reason']})")
    statuses.append(await _anchors(runtime, evidence, fixes))
    return CheckResult(
        "audit_trail", worst(*statuses), "; ".join(evidence), fixes[0] if fixes else ""
    )


async def _anchors(runtime: Runtime, evidence: list[str], fixes: list[str]) -> Status:
    keeper, every = runtime.anchors, runtime.settings.audit_anchor_every
    if keeper is None or every is None:
        evidence.append("no signed anchors are kept")
        fixes.append("set TETHER_AUDIT_ANCHOR_EVERY=1h and TETHER_AUDIT_ANCHOR_DEST=s3://…")
        return Status.WARN
    anchor = await keeper.latest()
    if anchor is None or anchor.ts < now_ms() - 2 * every * 1000 - ANCHOR_SLACK_MS:
        evidence.append(
            "no anchor at the anchor destination"
            if anchor is None
            else f"the newest anchor is {_days(anchor.ts)} old (kept every {every:g} s)"
        )
        fixes.append("make TETHER_AUDIT_ANCHOR_DEST writable (see tether_audit_anchor_failures)")
        return Status.WARN
    evidence.append(f"anchored through #{anchor.seq} {_days(anchor.ts)} ago")
    return Status.PASS


def _days(ts: int) -> str:
    seconds = max(0, now_ms() - ts) / 1000
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"
