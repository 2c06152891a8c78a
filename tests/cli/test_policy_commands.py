"""``tether policy`` and ``tether approvals`` against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.support.server import RunningTether
from tether.cli.main import app

POLICY = """\
@id("dev-buckets")
permit(principal, action in Action::"s3:*", resource)
when { resource.arn like "arn:aws:s3:::dev-*" };

permit(principal, action == Action::"file:Write", resource)
when { resource.tags.env == "dev" && resource.arn like "/srv/app/*" };
"""

SUITE = """\
project = "p"

[[probe]]
agent = "bot"
action = "s3:GetObject"
resource = "arn:aws:s3:::dev-logs/a"
expect = "allow"

[[probe]]
agent = "bot"
action = "s3:GetObject"
resource = "arn:aws:s3:::prod-logs/a"
expect = "deny"

[[probe]]
agent = "bot"
action = "s3:DeleteBucket"
resource = "arn:aws:s3:::dev-logs"
expect = "approval"

[[probe]]
agent = "bot"
action = "file:Write"
resource = "/srv/app/x"
tags = { env = "prod" }
expect = "deny"
"""


@pytest.fixture
def cli(tether: RunningTether, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TETHER_URL", tether.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", tether.admin_token)
    runner = CliRunner()

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args))

    return run


def test_apply_show_diff(cli, tether: RunningTether, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tether.create_project("p", policy=None)
    policy = tmp_path / "p.cedar"
    policy.write_text(POLICY)

    applied = cli("policy", "apply", str(policy), "-p", "p")
    assert applied.exit_code == 0, applied.output
    assert "policy v1 in force (2 rules" in applied.output
    assert "unchanged" in cli("policy", "apply", str(policy), "-p", "p").output

    shown = cli("policy", "show", "-p", "p")
    assert shown.exit_code == 0 and POLICY in shown.stdout

    policy.write_text(POLICY.replace("dev-*", "stage-*"))
    diff = cli("policy", "diff", str(policy), "-p", "p")
    assert diff.exit_code == 0
    assert '-when { resource.arn like "arn:aws:s3:::dev-*" };' in diff.output
    assert '+when { resource.arn like "arn:aws:s3:::stage-*" };' in diff.output
    assert tether.call("GET", "/projects/p/policy").json()["version"] == 1, "diff applies nothing"


def test_broken_policy_file_shows_positions_and_changes_nothing(
    cli, tether: RunningTether, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    tether.create_project("p", policy=POLICY)
    broken = tmp_path / "broken.cedar"
    broken.write_text('permit(principal, action, resource)\nwhen { resource.arn like "x*" ;\n')

    result = cli("policy", "apply", str(broken), "-p", "p")

    assert result.exit_code == 1
    assert "broken.cedar" in result.output
    assert "line 2, column 31: unexpected token `;`" in result.output
    assert tether.call("GET", "/projects/p/policy").json()["version"] == 1
    assert cli("policy", "diff", str(broken), "-p", "p").exit_code == 1


def test_policy_test_passes_and_fails_with_a_table(
    cli, tether: RunningTether, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    tether.create_project("p", policy=POLICY)
    suite = tmp_path / "suite.toml"
    suite.write_text(SUITE)

    passed = cli("policy", "test", str(suite))
    assert passed.exit_code == 0, passed.output
    assert "4 of 4 probes as expected" in passed.output

    loose = tmp_path / "loose.cedar"
    loose.write_text("permit(principal, action, resource);\n")
    failed = cli("policy", "test", str(suite), "--candidate", str(loose), "--json")
    assert failed.exit_code == 1
    report = json.loads(failed.stdout)
    assert report["failures"] == 2
    assert [p["got"] for p in report["probes"]] == ["allow", "allow", "approval", "allow"]

    bad = tmp_path / "bad.toml"
    bad.write_text('[[probe]]\nagent = "bot"\naction = "x:Y"\nresource = "r"\nexpect = "maybe"\n')
    refused = cli("policy", "test", str(bad), "-p", "p")
    assert refused.exit_code == 1 and "probe 1 expects 'maybe'" in refused.output


def test_probe_shows_every_out_of_scope_action_refused(cli, tether: RunningTether) -> None:  # type: ignore[no-untyped-def]
    tether.create_project("p", policy=POLICY)
    key = tether.create_agent("bot", "p")

    result = cli("policy", "probe", "--agent", "bot", "--key", key, "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["allowed"] == 0
    probes = {(p["action"], p["resource"]): p for p in report["probes"]}
    assert probes[("s3:DeleteBucket", "arn:aws:s3:::prod-data")]["hook"] == "deny"
    assert probes[("s3:DeleteBucket", "arn:aws:s3:::prod-data")]["authorize"] == "deny (403)"
    assert probes[("s3:GetObject", "arn:aws:s3:::prod-tether-probe")]["policy"] == "deny"
    inside = probes[("s3:DeleteBucket", "arn:aws:s3:::dev-tether-probe")]
    assert inside["policy"] == "approval" and inside["authorize"] == "pending (202)"
    assert any(p["tags"] == "env=prod" for p in report["probes"])
    assert tether.call("GET", "/approvals", params={"state": "pending"}).json() == []
    audit = tether.call("GET", "/audit", params={"session": report["session"]}).json()
    assert len([e for e in audit if e["source"] == "claude_code_hook"]) >= 6


def test_probe_skips_what_the_policy_allows_and_needs_the_agent_key(
    cli, tether: RunningTether
) -> None:  # type: ignore[no-untyped-def]
    tether.create_project("p", policy=POLICY)
    key = tether.create_agent("bot", "p")
    tether.call("PATCH", "/projects/p", json={"deletion_approval": False})
    tether.apply_policy(
        "p", POLICY + '\npermit(principal, action == Action::"iam:DeleteRole", resource);'
    )

    result = cli("policy", "probe", "--agent", "bot", "--key", key, "--json")

    assert result.exit_code == 0, "the policy now allows iam:DeleteRole, so it is not probed"
    assert ("iam:DeleteRole", "arn:aws:iam:::role/admin") not in {
        (p["action"], p["resource"]) for p in json.loads(result.stdout)["probes"]
    }
    assert cli("policy", "probe", "--agent", "bot").exit_code == 1, "needs the agent key"


def test_approvals_cli_round_trip(cli, tether: RunningTether) -> None:  # type: ignore[no-untyped-def]
    tether.create_project("p", policy=POLICY)
    key = tether.create_agent("bot", "p")
    body = {"session_id": "s", "action": "s3:DeleteBucket", "resource": "arn:aws:s3:::dev-a"}
    headers = {"Authorization": f"Bearer {key}"}
    approval_id = httpx.post(f"{tether.url}/v1/authorize", json=body, headers=headers).json()[
        "approval_id"
    ]

    listed = cli("approvals", "list", "--json")
    assert listed.exit_code == 0
    assert [a["id"] for a in json.loads(listed.stdout)] == [approval_id]
    assert cli("approvals", "list").exit_code == 0
    assert cli("approvals", "approve", approval_id, "--reason", "ok").exit_code == 0
    assert httpx.post(f"{tether.url}/v1/authorize", json=body, headers=headers).status_code == 200

    second = httpx.post(f"{tether.url}/v1/authorize", json=body, headers=headers).json()
    denied = cli("approvals", "deny", second["approval_id"], "--reason", "enough", "--json")
    assert denied.exit_code == 0 and json.loads(denied.stdout)["state"] == "denied"
    again = cli("approvals", "deny", second["approval_id"], "--reason", "x")
    assert again.exit_code == 1 and "already denied" in again.output
    used = json.loads(cli("approvals", "list", "--state", "used", "--json").stdout)
    assert [a["id"] for a in used] == [approval_id]


def test_approvals_cli_narrows_a_group_and_refuses_to_widen_it(cli, tether: RunningTether) -> None:  # type: ignore[no-untyped-def]
    tether.create_project("p", policy=POLICY)
    key = tether.create_agent("bot", "p")
    headers = {"Authorization": f"Bearer {key}"}
    for name in ("a", "b", "c", "d"):
        body = {"session_id": "s", "action": "s3:DeleteObject",
                "resource": f"arn:aws:s3:::dev-a/tmp/x/{name}"}  # fmt: skip
        answer = httpx.post(f"{tether.url}/v1/authorize", json=body, headers=headers).json()
    approval_id = answer["approval_id"]
    shown = json.loads(cli("approvals", "show", approval_id, "--json").stdout)
    assert shown["count"] == 4 and shown["prefix"] == "arn:aws:s3:::dev-a/tmp/x/"

    wider = cli("approvals", "approve", approval_id, "--prefix", "arn:aws:s3:::dev-a/")
    assert wider.exit_code == 1 and "narrow it, not widen it" in wider.output
    more = cli("approvals", "approve", approval_id, "--max", "9")
    assert more.exit_code == 1 and "more than the 4" in more.output
    out = cli(
        "approvals", "approve", approval_id, "--max", "2", "--ttl", "60",
        "--prefix", "arn:aws:s3:::dev-a/tmp/x/a", "--json",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    granted = json.loads(out.stdout)
    assert granted["max_uses"] == 2 and granted["prefix"] == "arn:aws:s3:::dev-a/tmp/x/a"
    body = {
        "session_id": "s",
        "action": "s3:DeleteObject",
        "resource": "arn:aws:s3:::dev-a/tmp/x/b",
    }
    outside = httpx.post(f"{tether.url}/v1/authorize", json=body, headers=headers)
    assert outside.status_code == 202, "outside the narrowed prefix"
    body["resource"] = "arn:aws:s3:::dev-a/tmp/x/a"
    assert httpx.post(f"{tether.url}/v1/authorize", json=body, headers=headers).status_code == 200


def test_project_approval_settings(cli, tether: RunningTether) -> None:  # type: ignore[no-untyped-def]
    tether.create_project("p")
    out = cli(
        "projects", "set-approvals", "p", "--no-deletions", "--unknown-command", "ask",
        "--ttl", "600", "--json",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    settings = json.loads(out.stdout)
    assert (settings["deletion_approval"], settings["unknown_command"]) == (False, "ask")
    assert settings["approval_ttl_seconds"] == 600
    bad = cli("projects", "set-approvals", "p", "--unknown-command", "allow")
    assert bad.exit_code == 1 and "unknown_command" in bad.output


def test_history_and_rolling_back_to_an_earlier_version(
    cli, tether: RunningTether, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    tether.create_project("p", policy=POLICY)
    tether.apply_policy("p", "forbid(principal, action, resource);\n")

    history = json.loads(cli("policy", "history", "-p", "p", "--json").stdout)
    assert [v["version"] for v in history] == [2, 1]
    old = cli("policy", "show", "-p", "p", "--version", "1")
    assert old.exit_code == 0 and old.stdout == POLICY
    assert cli("policy", "show", "-p", "p", "--version", "9").exit_code == 1

    rollback = tmp_path / "v1.cedar"
    rollback.write_text(old.stdout)
    assert "policy v3 in force" in cli("policy", "apply", str(rollback), "-p", "p").output
