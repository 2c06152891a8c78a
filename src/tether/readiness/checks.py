"""The readiness checks of one project: each pass / warn / fail with evidence and a fix.

Every check reads memory or one indexed query (``store/readiness.py``), so ``tether check``
stays fast on a project with millions of audit events."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tether.clock import now_ms
from tether.guards.settings import GuardSettings, load_guard_settings
from tether.readiness.results import CheckResult, Status, worst
from tether.readiness.trail import audit_trail
from tether.readiness.usage import cloud_through_broker, mcp_through_tether, shared_keys
from tether.records.budgets import DEFAULT_THRESHOLDS, BudgetPeriod, BudgetScope
from tether.store.readiness import ReadinessQueries

if TYPE_CHECKING:
    from tether.records.fleet import Project
    from tether.runtime import Runtime

__all__ = ["CheckResult", "Status", "assess_project"]

DAY_MS = 86_400_000
DRILL_MAX_AGE_MS = 30 * DAY_MS
WEBHOOK_MAX_SILENCE_MS = 30 * DAY_MS
HOOK_WINDOW_MS = 7 * DAY_MS
LONG_SESSION_MS = 3_600_000


async def _keys(runtime: Runtime, project: Project) -> CheckResult:
    agents = [a for a in await runtime.agents.all(project.id) if a.state.value == "active"]
    keyed = {k.agent_id for k in await runtime.agents.live_keys()}
    keyless = [a.name for a in agents if a.id not in keyed]
    if not agents:
        return CheckResult(
            "own_keys",
            Status.WARN,
            "the project has no active agent",
            f"tether agents create NAME -p {project.name}",
        )
    if keyless:
        return CheckResult(
            "own_keys",
            Status.FAIL,
            f"active agents without a live key of their own: {', '.join(keyless)}",
            f"tether keys rotate {keyless[0]}",
        )
    return CheckResult(
        "own_keys", Status.PASS, f"{len(agents)} active agents, each with its own key"
    )


async def _budgets(runtime: Runtime, project: Project, queries: ReadinessQueries) -> CheckResult:
    budgets = [b for b in await runtime.budget_store.all() if b.project_id == project.id]
    session = [b for b in budgets if b.scope is BudgetScope.SESSION]
    periodic = [
        b
        for b in budgets
        if b.scope is BudgetScope.PROJECT and b.period in (BudgetPeriod.DAILY, BudgetPeriod.MONTHLY)
    ]
    fix = f"tether budgets set -p {project.name} --daily 50 --session-limit 5"
    if not session or not periodic:
        missing = [
            n for n, have in (("per-session", session), ("daily or monthly", periodic)) if not have
        ]
        return CheckResult("budgets", Status.FAIL, f"no {' and no '.join(missing)} budget", fix)
    short = [
        b.period.value
        for b in [*session, *periodic]
        if not set(DEFAULT_THRESHOLDS) <= set(b.thresholds)
    ]
    if short:
        return CheckResult(
            "budgets",
            Status.WARN,
            f"budgets without alerts at 50/80/100 %: {', '.join(short)}",
            fix,
        )
    hooks = await runtime.webhooks.of_project(project.id)
    if not hooks:
        return CheckResult(
            "budgets",
            Status.FAIL,
            "budgets alert at 50/80/100 %, but no webhook receives the alerts",
            f"tether webhooks add URL -p {project.name}",
        )
    delivered = await queries.last_delivery(project.id)
    if delivered is None or delivered < now_ms() - WEBHOOK_MAX_SILENCE_MS:
        return CheckResult(
            "budgets",
            Status.WARN,
            f"{len(hooks)} webhook(s), none delivered in the last 30 days",
            f"tether webhooks deliveries -p {project.name}",
        )
    return CheckResult("budgets", Status.PASS, "per-session and periodic budgets, alerts delivered")


_STATEMENT = re.compile(r"permit\s*\((?P<head>[^)]*)\)(?P<conditions>[^;]*)", re.IGNORECASE)


def _constrained(head: str, var: str) -> bool:
    return re.search(rf"\b{var}\s*(==|in\b|is\b)", head) is not None


def _policy_risks(source: str) -> list[str]:
    """Permits that reach every resource (no scope in the head, no ``when`` on the
    resource) of every action, of deletions or of a ``*`` family of actions."""
    risks = []
    for match in _STATEMENT.finditer(source):
        head, conditions = match.group("head"), match.group("conditions")
        if _constrained(head, "resource") or re.search(r"\bwhen\b[^}]*\bresource\b", conditions):
            continue
        if not _constrained(head, "action"):
            risks.append("a permit of every action on unscoped resources")
        elif re.search(r"delete|\*", head, re.IGNORECASE):
            risks.append(
                f"a permit of deletions or `*` actions on unscoped resources ({head.strip()})"
            )
    return risks


async def _policy(runtime: Runtime, project: Project, queries: ReadinessQueries) -> CheckResult:
    statuses: list[Status] = []
    evidence: list[str] = []
    fix = ""
    current = await runtime.policy_store.current(project.id)
    risks = _policy_risks(current.source) if current else []
    if risks:
        statuses.append(Status.FAIL)
        evidence.append(f"policy v{current.version if current else 0}: {risks[0]}")
        fix = f"tether policy apply FILE -p {project.name}"
    if not project.deletion_approval:
        statuses.append(Status.FAIL)
        evidence.append("deletions do not wait for an approval")
        fix = fix or f"tether projects set-approvals {project.name} --deletions"
    changed = current.created_at if current else project.created_at
    probe = await queries.last_event(project.id, "policy:probe", "ok")
    if probe is None or probe["ts"] < changed:
        statuses.append(Status.WARN)
        evidence.append("no passing `tether policy probe` since the policy last changed")
        fix = fix or "tether policy probe -a AGENT --key KEY"
    if not statuses:
        return CheckResult(
            "policy", Status.PASS, "no broad permits; deletions need approval; probed"
        )
    return CheckResult("policy", worst(*statuses), "; ".join(evidence), fix)


async def _hooks(runtime: Runtime, project: Project, queries: ReadinessQueries) -> CheckResult:
    guards = load_guard_settings(project.guards)
    since = now_ms() - HOOK_WINDOW_MS
    # Tool results the model boundary saw ("tool_result") against those the agent's
    # hooks reported ("tool_result:<tool>"): a tool that ran with hooks off shows only in the first.
    results = await queries.count_actions(project.id, "tool_result", since)
    hooked = await queries.count_actions(project.id, "tool_result:", since, prefix=True)
    share = min(1.0, hooked / results) if results else None
    seen = f"hooks reported {hooked} of {results} tool results in 7 days"
    fix = f"tether guards set -p {project.name} --require-hooks"
    if not guards.require_hooks:
        return CheckResult("hooks", Status.WARN, f"require_hooks is off; {seen}", fix)
    if share is not None and share < 0.9:
        return CheckResult(
            "hooks", Status.WARN, f"{share:.0%} of tool calls decided by hooks ({seen})", fix
        )
    return CheckResult("hooks", Status.PASS, f"require_hooks on; {seen}")


_LIMITS = (
    "repeat_limit",
    "tool_repeat_limit",
    "max_retries",
    "stall_calls",
    "stall_minutes",
    "breaker_failures",
)


def _guards(project: Project) -> CheckResult:
    settings = load_guard_settings(project.guards)
    default = GuardSettings()
    off = [n for n in _LIMITS if getattr(settings, n) is None and getattr(default, n) is not None]
    looser = [
        n
        for n in _LIMITS
        if getattr(settings, n) is not None
        and getattr(default, n) is not None
        and getattr(settings, n) > getattr(default, n)
    ]
    fix = f"tether guards set -p {project.name} (defaults: tether guards show)"
    if off:
        return CheckResult("guards", Status.FAIL, f"guards switched off: {', '.join(off)}", fix)
    if looser:
        return CheckResult(
            "guards", Status.WARN, f"looser than the defaults: {', '.join(looser)}", fix
        )
    return CheckResult("guards", Status.PASS, "every guard at or stricter than the defaults")


async def _long_sessions(project: Project, queries: ReadinessQueries) -> CheckResult:
    found = await queries.long_sessions_without_task(project.id, now_ms() - LONG_SESSION_MS)
    if found:
        return CheckResult(
            "long_sessions",
            Status.WARN,
            f"active for over an hour without a task: {', '.join(found[:5])}",
            f"tether tasks create FILE -p {project.name}",
        )
    return CheckResult("long_sessions", Status.PASS, "every session over an hour has a task")


async def _drill(project: Project, queries: ReadinessQueries, kind: str) -> CheckResult:
    name = f"drill_{kind}"
    last = await queries.last_event(project.id, f"drill:{kind}", "ok")
    fix = f"tether drill {kind} -p {project.name}"
    if last is None or last["ts"] < now_ms() - DRILL_MAX_AGE_MS:
        failed = await queries.last_event(project.id, f"drill:{kind}", "error")
        why = f"; the last one failed: {failed['reason']}" if failed else ""
        return CheckResult(name, Status.FAIL, f"no {kind} drill passed in 30 days{why}", fix)
    days = (now_ms() - last["ts"]) / DAY_MS
    return CheckResult(name, Status.PASS, f"passed {days:.1f} days ago: {last['reason']}")


async def assess_project(runtime: Runtime, project: Project) -> list[CheckResult]:
    """Every readiness check of the project, in the order an operator fixes them."""
    queries = ReadinessQueries(runtime.db)
    return [
        await _keys(runtime, project),
        await shared_keys(runtime, project),
        await _budgets(runtime, project, queries),
        await _policy(runtime, project, queries),
        await _hooks(runtime, project, queries),
        await cloud_through_broker(runtime, project),
        await mcp_through_tether(runtime, project),
        _guards(project),
        await _long_sessions(project, queries),
        await audit_trail(runtime),
        await _drill(project, queries, "kill"),
        await _drill(project, queries, "pause"),
    ]
