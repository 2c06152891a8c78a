"""``tether policy probe``: try what an agent must not do, through the real front doors.

Probes come from the policy in force (other prefixes, other tags, deletions) plus a fixed
set; those the policy does not allow outright are sent with the agent's own key to
``/v1/authorize`` and to the Claude Code hook. Every one must be refused or held for
approval; approvals the probe caused are denied again at the end.
"""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import typer

from tether.cli.client import AdminClient, CliError
from tether.cli.context import JsonOption, client, reports_errors
from tether.cli.output import console, print_json, print_table
from tether.cli.policy_source import current_policy
from tether.cli.probe_requests import hook_tool_call
from tether.policy.probes import PROBE_SESSION_PREFIX, CandidateProbe, candidate_probes

__all__ = ["probe"]

AgentArgument = typer.Option(..., "--agent", "-a", help="The agent whose scope to probe.")
KeyOption = typer.Option(
    None, "--key", envvar="TETHER_AGENT_KEY", help="The agent's key (tth_…); probes use it."
)


def _authorize(url: str, key: str, session: str, probe: CandidateProbe) -> str:
    response = httpx.post(
        f"{url}/v1/authorize",
        json={
            "session_id": session,
            "action": probe.action,
            "resource": probe.resource,
            "tags": probe.tags,
        },
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    decision = response.json().get("decision", "?") if response.content else "?"
    return f"{decision} ({response.status_code})"


def _hook(url: str, key: str, session: str, probe: CandidateProbe) -> str:
    call = hook_tool_call(probe.action, probe.resource)
    if call is None:
        return "-"
    tool, tool_input = call
    response = httpx.post(
        f"{url}/hooks/claude-code",
        json={
            "session_id": session,
            "hook_event_name": "PreToolUse",
            "tool_name": tool,
            "tool_input": tool_input,
            "cwd": "/",
            "tool_use_id": "tether-probe",
        },
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    output: dict[str, Any] = response.json().get("hookSpecificOutput", {})
    return str(output.get("permissionDecision", f"HTTP {response.status_code}"))


def _withdraw_approvals(admin: AdminClient, project: str, session: str) -> int:
    pending = admin.call("GET", "/approvals", params={"project": project, "state": "pending"})
    withdrawn = 0
    for approval in pending:
        if approval["session"] == session:
            admin.call(
                "POST", f"/approvals/{approval['id']}/deny", {"reason": "tether policy probe"}
            )
            withdrawn += 1
    return withdrawn


@reports_errors
def probe(
    ctx: typer.Context,
    agent: str = AgentArgument,
    key: str | None = KeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Send actions outside AGENT's scope through /v1/authorize and the hook endpoint;
    exits 1 if any is allowed."""
    if not key:
        raise CliError("the probes use the agent's own key: pass --key or set TETHER_AGENT_KEY")
    admin = client(ctx)
    project = admin.call("GET", f"/agents/{agent}")["project"]
    candidates = candidate_probes(current_policy(admin, project)[0])
    verdicts = admin.call(
        "POST",
        f"/projects/{project}/policy/evaluate",
        {
            "probes": [
                {"agent": agent, "action": c.action, "resource": c.resource, "tags": c.tags}
                for c in candidates
            ]
        },
    )["results"]
    session = f"{PROBE_SESSION_PREFIX}{int(time.time())}-{os.getpid()}"
    rows = []
    for candidate, verdict in zip(candidates, verdicts, strict=True):
        if verdict["decision"] == "allow":
            continue
        authorized = _authorize(admin.url, key, session, candidate)
        hooked = _hook(admin.url, key, session, candidate)
        refused = not authorized.startswith("allow") and hooked not in ("allow", "HTTP 200")
        rows.append(
            {
                "action": candidate.action,
                "resource": candidate.resource,
                "tags": ",".join(f"{k}={v}" for k, v in candidate.tags.items()),
                "why": candidate.why,
                "policy": verdict["decision"],
                "authorize": authorized,
                "hook": hooked,
                "ok": "✓ refused" if refused else "✗ ALLOWED",
            }
        )
    withdrawn = _withdraw_approvals(admin, project, session)
    allowed = [row for row in rows if not row["ok"].startswith("✓")]
    admin.call(
        "POST",
        f"/projects/{project}/policy/probes",
        {"agent": agent, "session": session, "probes": len(rows), "allowed": len(allowed)},
    )
    if as_json:
        print_json({"agent": agent, "session": session, "probes": rows, "allowed": len(allowed)})
    else:
        print_table(rows, list(rows[0]) if rows else ["action"], title=f"probes for {agent}")
        colour = "red" if allowed else "green"
        console.print(
            f"[{colour}]{len(rows) - len(allowed)} of {len(rows)} out-of-scope actions refused"
            f"[/{colour}] (session {session}; {withdrawn} approval request(s) withdrawn)"
        )
    if allowed:
        raise typer.Exit(1)
