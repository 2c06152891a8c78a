"""Shadow mode through the real doors: Claude Code hooks decided by the policy in force
while a shadow candidate is asked beside it; differences on the audit event, in the
metric and in ``tether policy shadow``; promote and clear with the CLI."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from typer.testing import CliRunner, Result

from tests.support.server import RunningTether
from tests.support.streams import MODEL
from tether.cli.main import app

Cli = Callable[..., Result]

LIVE = """\
@id("make") permit(principal, action == Action::"tool:Bash", resource)
  when { resource.arn like "command:make *" };
@id("app-files") permit(principal, action in [Action::"file:Read", Action::"file:Write"], resource)
  when { resource.arn like "/home/dev/app/*" };
"""
CANDIDATE = """\
@id("make") permit(principal, action == Action::"tool:Bash", resource)
  when { resource.arn like "command:make *" };
@id("no-deploy") forbid(principal, action == Action::"tool:Bash", resource)
  when { resource.arn like "command:make deploy*" };
@id("read-anywhere") permit(principal, action == Action::"file:Read", resource);
@id("app-writes") permit(principal, action == Action::"file:Write", resource)
  when { resource.arn like "/home/dev/app/*" };
"""
CWD = "/home/dev/app"


@pytest.fixture
def cli(tether_any: RunningTether, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("TETHER_URL", tether_any.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", tether_any.admin_token)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def _hook(tether: RunningTether, key: str, tool: str, tool_input: dict[str, Any]) -> str:
    response = httpx.post(
        f"{tether.url}/hooks/claude-code",
        json={
            "session_id": "d97e2169-8a54-4b1e-9f27-3c1f0f8b9a11",
            "transcript_path": "/home/dev/.claude/projects/app/d97e2169.jsonl",
            "cwd": CWD,
            "permission_mode": "bypassPermissions",
            "hook_event_name": "PreToolUse",
            "tool_name": tool,
            "tool_input": tool_input,
            "tool_use_id": "toolu_01ABCDEF",
        },
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["hookSpecificOutput"]["permissionDecision"])


def _events(tether: RunningTether, action: str) -> list[dict[str, Any]]:
    out = tether.call("GET", "/audit", params={"project": "p", "action": action})
    assert out.status_code == 200, out.text
    return [e for e in out.json() if e["action"] == action]


def _metric(tether: RunningTether, direction: str) -> float:
    text = httpx.get(
        f"{tether.url}/metrics", headers={"Authorization": f"Bearer {tether.admin_token}"}
    ).text
    series = f'tether_policy_shadow_differences_total{{direction="{direction}",project="p"}}'
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.fixture
def project(tether_any: RunningTether) -> str:
    tether_any.create_project("p", policy=LIVE)
    return tether_any.create_agent("claude-dev", "p")


def test_shadow_differences_are_recorded_and_reported_while_the_policy_decides(
    cli: Cli, tether_any: RunningTether, project: str, tmp_path: Path
) -> None:
    candidate = tmp_path / "candidate.cedar"
    candidate.write_text(CANDIDATE)
    started = cli("policy", "apply", str(candidate), "-p", "p", "--shadow")
    assert started.exit_code == 0, started.output
    assert "now runs in shadow" in started.output

    key = project
    assert _hook(tether_any, key, "Bash", {"command": "make deploy"}) == "allow"
    assert _hook(tether_any, key, "Bash", {"command": "make deploy-prod"}) == "allow"
    assert _hook(tether_any, key, "Bash", {"command": "make test"}) == "allow"
    assert _hook(tether_any, key, "Read", {"file_path": "/etc/hosts"}) == "deny"
    assert _hook(tether_any, key, "Read", {"file_path": f"{CWD}/main.py"}) == "allow"

    bash = _events(tether_any, "tool:Bash")
    shadows = {e["resource"]: e["attributes"].get("shadow") for e in bash}
    assert shadows["command:make test"] is None
    assert shadows["command:make deploy"]["decision"] == "deny"
    assert shadows["command:make deploy"]["live"] == "allow"
    assert shadows["command:make deploy"]["rules"] == ["'no-deploy' (line 3)"]
    assert all(e["result"] == "allow" for e in bash), "the shadow changes no decision"
    read = {e["resource"]: e for e in _events(tether_any, "file:Read")}
    assert read["/etc/hosts"]["result"] == "deny"
    assert read["/etc/hosts"]["attributes"]["shadow"]["decision"] == "allow"

    assert _metric(tether_any, "would_deny") == 2
    assert _metric(tether_any, "would_allow") == 1

    reported = cli("policy", "shadow", "-p", "p", "--json")
    assert reported.exit_code == 0, reported.output
    out = json.loads(reported.output)
    assert (out["would_deny"], out["would_allow"], out["would_ask"]) == (2, 1, 0)
    groups = {(g["direction"], g["rule"]): g for g in out["differences"]}
    deny = groups[("would_deny", "'no-deploy' (line 3)")]
    assert deny["count"] == 2
    assert {e["resource"] for e in deny["examples"]} == {
        "command:make deploy",
        "command:make deploy-prod",
    }
    assert deny["examples"][0]["live"] == "allow"
    allow = groups[("would_allow", "'read-anywhere' (line 5)")]
    assert allow["examples"][0]["resource"] == "/etc/hosts"
    assert out["policy_version"] == 1

    table = cli("policy", "shadow", "-p", "p")
    assert table.exit_code == 0, table.output
    assert "would deny 2, would allow 1" in table.output


def test_promote_applies_the_candidate_and_ends_the_shadow(
    cli: Cli, tether_any: RunningTether, project: str, tmp_path: Path
) -> None:
    candidate = tmp_path / "candidate.cedar"
    candidate.write_text(CANDIDATE)
    assert cli("policy", "apply", str(candidate), "-p", "p", "--shadow").exit_code == 0
    assert _hook(tether_any, project, "Bash", {"command": "make deploy"}) == "allow"

    promoted = cli("policy", "shadow", "-p", "p", "--promote")
    assert promoted.exit_code == 0, promoted.output
    assert "policy v2 in force" in promoted.output
    shown = tether_any.call("GET", "/projects/p/policy").json()
    assert (shown["version"], shown["source"]) == (2, CANDIDATE)
    assert shown["created_by"].startswith("admin:")
    assert _hook(tether_any, project, "Bash", {"command": "make deploy"}) == "deny"
    assert _events(tether_any, "tool:Bash")[-1]["attributes"].get("shadow") is None

    gone = tether_any.call("GET", "/projects/p/policy/shadow")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "no_shadow_policy"
    audited = tether_any.call("GET", "/audit", params={"action": "admin:policy.shadow.promote"})
    assert [e["result"] for e in audited.json()] == ["ok"]


def test_clear_stops_the_shadow_and_leaves_the_policy(
    cli: Cli, tether_any: RunningTether, project: str, tmp_path: Path
) -> None:
    candidate = tmp_path / "candidate.cedar"
    candidate.write_text(CANDIDATE)
    assert cli("policy", "apply", str(candidate), "-p", "p", "--shadow").exit_code == 0
    cleared = cli("policy", "shadow", "-p", "p", "--clear")
    assert cleared.exit_code == 0, cleared.output
    assert _hook(tether_any, project, "Bash", {"command": "make deploy"}) == "allow"
    assert _events(tether_any, "tool:Bash")[-1]["attributes"].get("shadow") is None
    assert tether_any.call("GET", "/projects/p/policy").json()["version"] == 1
    again = cli("policy", "shadow", "-p", "p", "--clear")
    assert again.exit_code != 0
    assert "no shadow policy" in again.output


def test_a_broken_candidate_is_refused_and_nothing_is_shadowed(
    cli: Cli, tether_any: RunningTether, project: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.cedar"
    broken.write_text('permit(principal, action == Action::"tool:Bash", resource)\n  when { ;\n')
    refused = cli("policy", "apply", str(broken), "-p", "p", "--shadow")
    assert refused.exit_code != 0
    assert "line 2" in refused.output
    direct = tether_any.call(
        "PUT", "/projects/p/policy/shadow", json={"source": "permit(principal, action"}
    )
    assert direct.status_code == 422
    assert direct.json()["error"]["code"] == "policy_invalid"
    assert tether_any.call("GET", "/projects/p/policy/shadow").status_code == 404
    assert _hook(tether_any, project, "Bash", {"command": "make deploy"}) == "allow"
    assert _events(tether_any, "tool:Bash")[-1]["attributes"].get("shadow") is None


def test_a_model_call_goes_through_while_a_shadow_would_forbid_it(
    gateway: RunningTether, sdk: Callable[..., anthropic.Anthropic]
) -> None:
    key = gateway.create_agent("writer", "p")
    shadow = '@id("no-models") forbid(principal, action in Action::"model", resource);'
    started = gateway.call("PUT", "/projects/p/policy/shadow", json={"source": shadow})
    assert started.status_code == 201, started.text

    reply = sdk(gateway, key).messages.create(
        model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.content

    out = gateway.call("GET", "/audit", params={"project": "p", "action": "model:"})
    decided = [e for e in out.json() if not e["action"].endswith(":completed")]
    assert [e["result"] for e in decided] == ["allow"]
    assert decided[0]["attributes"]["shadow"]["decision"] == "deny"
    report = gateway.call("GET", "/projects/p/policy/shadow").json()
    assert report["would_deny"] == 1
    assert report["differences"][0]["rule"] == "'no-models' (line 1)"
