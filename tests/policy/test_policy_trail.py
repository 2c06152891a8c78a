"""``policy suggest``, ``policy test --replay`` and ``policy lint`` against a trail made
through the real front door (``/v1/authorize``), driven with the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from tests.support.server import RunningTether
from tether.cli.main import app

Cli = Callable[..., Result]

FIRST_POLICY = """\
@id("everything") permit(principal, action, resource);
@id("no-prod") forbid(principal, action, resource) when { resource.tags.env == "prod" };
@id("no-users") forbid(principal, action == Action::"iam:CreateUser", resource);
@id("never") permit(principal, action == Action::"sqs:SendMessage", resource)
  when { resource.arn like "arn:aws:sqs:*" };
"""
DEV = {"env": "dev"}


@pytest.fixture
def cli(tether_any: RunningTether, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("TETHER_URL", tether_any.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", tether_any.admin_token)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def _ask(
    tether: RunningTether, key: str, action: str, resource: str, tags: dict | None = None
) -> str:
    answer = httpx.post(
        f"{tether.url}/v1/authorize",
        json={
            "session_id": f"s-{key[-6:]}",
            "action": action,
            "resource": resource,
            "tags": tags or {},
        },
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.status_code in (200, 202, 403), answer.text
    return str(answer.json()["decision"])


@pytest.fixture
def fleet(tether_any: RunningTether) -> RunningTether:
    tether_any.create_project("fleet", policy=FIRST_POLICY)
    a1 = tether_any.create_agent("a1", "fleet")
    a2 = tether_any.create_agent("a2", "fleet")
    for key in (a1, a2):
        for n in range(5):
            resource = f"arn:aws:s3:::dev-data/reports/2026/{n}.csv"
            assert _ask(tether_any, key, "s3:GetObject", resource, DEV) == "allow"
    for n in range(3):
        assert (
            _ask(tether_any, a1, "s3:PutObject", f"arn:aws:s3:::dev-data/out/{n}.json", DEV)
            == "allow"
        )
    for path in ("/repo/src/a.py", "/repo/src/b.py", "/repo/README.md"):
        assert _ask(tether_any, a1, "file:Read", path) == "allow"
    ec2 = "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc"
    assert _ask(tether_any, a2, "ec2:DescribeInstances", ec2) == "allow"
    assert _ask(tether_any, a1, "s3:DeleteObject", "arn:aws:s3:::dev-data/tmp/x", DEV) == "pending"
    prod = "arn:aws:s3:::prod-data/customers.csv"
    assert _ask(tether_any, a1, "s3:GetObject", prod, {"env": "prod"}) == "deny"
    assert _ask(tether_any, a2, "iam:CreateUser", "arn:aws:iam::123456789012:user/x") == "deny"
    return tether_any


def _decide(tether: RunningTether, source: str, probes: list[dict]) -> list[str]:
    out = tether.call(
        "POST", "/projects/fleet/policy/evaluate", json={"source": source, "probes": probes}
    )
    assert out.status_code == 200, out.text
    return [r["decision"] for r in out.json()["results"]]


def test_suggested_policy_keeps_what_was_done_and_denies_what_never_was(
    cli: Cli, fleet: RunningTether, tmp_path: Path
) -> None:
    suggested = tmp_path / "suggested.cedar"
    made = cli("policy", "suggest", "-p", "fleet", "--since", "1d", "--out", str(suggested))
    assert made.exit_code == 0, made.output
    source = suggested.read_text()
    resources = 5 + 3 + 3 + 1 + 1
    assert source.count("@id(") < resources
    assert 'principal in Project::"fleet"' in source, "both agents read the same reports"
    assert "@ask(" in source, "the deletion is left to a human"

    replayed = cli("policy", "test", "--replay", "1d", "--candidate", str(suggested), "-p", "fleet")
    assert replayed.exit_code == 0, replayed.output
    assert "0 change(s) not covered" in replayed.output

    probes = [
        {
            "agent": "a1",
            "action": "s3:GetObject",
            "resource": "arn:aws:s3:::dev-data/reports/2026/3.csv",
            "tags": DEV,
        },
        {
            "agent": "a1",
            "action": "s3:DeleteObject",
            "resource": "arn:aws:s3:::dev-data/tmp/x",
            "tags": DEV,
        },
        {"agent": "a1", "action": "s3:DeleteBucket", "resource": "arn:aws:s3:::dev-data"},
        {"agent": "a2", "action": "iam:CreateUser", "resource": "arn:aws:iam::123456789012:user/y"},
        {
            "agent": "a2",
            "action": "ec2:TerminateInstances",
            "resource": "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc",
        },
        {
            "agent": "a1",
            "action": "s3:GetObject",
            "resource": "arn:aws:s3:::dev-data/reports/2026/9.csv",
            "tags": {"env": "prod"},
        },
        {"agent": "a2", "action": "file:Read", "resource": "/repo/src/a.py"},
        {"agent": "a1", "action": "file:Read", "resource": "/etc/passwd"},
    ]
    assert _decide(fleet, source, probes) == [
        "allow",
        "approval",
        "deny",
        "deny",
        "deny",
        "deny",
        "deny",
        "deny",
    ]


def test_replay_lists_what_a_stricter_candidate_would_deny_and_expect_covers_it(
    cli: Cli, fleet: RunningTether, tmp_path: Path
) -> None:
    strict = tmp_path / "strict.cedar"
    strict.write_text(
        'permit(principal, action == Action::"file:Read", resource)\n'
        '  when { resource.arn like "/repo/*" };\n'
    )
    replayed = cli(
        "policy", "test", "--replay", "1d", "--candidate", str(strict), "-p", "fleet", "--json"
    )
    assert replayed.exit_code == 1, replayed.output
    report = json.loads(replayed.stdout)
    denied: dict[tuple[str, str], int] = {}
    for change in report["newly_denied"]:
        key = (change["action"], change["agent"])
        denied[key] = denied.get(key, 0) + change["count"]
    assert denied[("s3:GetObject", "a1")] == 5 and denied[("s3:GetObject", "a2")] == 5
    assert ("file:Read", "a1") not in denied and report["newly_allowed"] == []
    assert report["newly_denied_calls"] == 5 + 5 + 3 + 1 + 1

    covered = cli(
        "policy",
        "test",
        "--replay",
        "1d",
        "--candidate",
        str(strict),
        "-p",
        "fleet",
        "--expect",
        "denied s3:*",
        "--expect",
        "denied ec2:* arn:aws:ec2:*",
    )
    assert covered.exit_code == 0, covered.output
    bad = cli(
        "policy",
        "test",
        "--replay",
        "1d",
        "--candidate",
        str(strict),
        "-p",
        "fleet",
        "--expect",
        "maybe x",
    )
    assert bad.exit_code == 1 and "denied|allowed" in bad.output


def test_lint_flags_the_permit_all_the_unused_rule_and_an_unreachable_forbid(
    cli: Cli, fleet: RunningTether, tmp_path: Path
) -> None:
    linted = cli("policy", "lint", "-p", "fleet", "--json")
    assert linted.exit_code == 1, linted.output
    codes = {(f["code"], f["rule"].split(" ")[0]) for f in json.loads(linted.stdout)["findings"]}
    assert ("permit_everything", "'everything'") in codes
    assert ("unused_rule", "'never'") in codes
    assert not any(rule == "'no-prod'" and code == "unused_rule" for code, rule in codes)

    candidate = tmp_path / "candidate.cedar"
    candidate.write_text(
        '@id("reads") permit(principal, action == Action::"file:Read", resource)\n'
        '  when { resource.arn like "/repo/*" };\n'
        '@id("pointless") forbid(principal, action == Action::"iam:CreateUser", resource);\n'
    )
    warned = cli("policy", "lint", str(candidate), "-p", "fleet", "--json")
    assert warned.exit_code == 0, warned.output
    assert [f["code"] for f in json.loads(warned.stdout)["findings"]] == ["unreachable_forbid"]
    assert cli("policy", "lint", str(candidate), "-p", "fleet", "--strict").exit_code == 1

    applied_file = tmp_path / "wide.cedar"
    applied_file.write_text("permit(principal, action, resource);\n")
    applied = cli("policy", "apply", str(applied_file), "-p", "fleet")
    assert applied.exit_code == 0, applied.output
    assert "permits every action on every resource" in applied.output
