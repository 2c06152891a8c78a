"""Checks read from how agents used tether: a key shared between client addresses, cloud
commands around the broker, MCP servers around tether. Each passes on a project set up
as the guidance says and warns on one that is not, with its evidence and fix."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from typer.testing import CliRunner

from tests.support.aws import AgentPair, issue_aws_keys
from tests.support.server import RunningTether
from tether.cli.main import app


@pytest.fixture
def cli(tether_any: RunningTether, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TETHER_URL", tether_any.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", tether_any.admin_token)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def check(cli: Callable[..., Any], project: str, name: str) -> dict[str, str]:
    ran = cli("check", "-p", project, "--json")
    [report] = json.loads(ran.output)
    return next(c for c in report["checks"] if c["check"] == name)


def hook(
    tether: RunningTether, key: str, body: dict[str, Any], address: str = "127.0.0.1"
) -> dict[str, Any]:
    """A Claude Code hook call from the client address ``address`` (a loopback alias)."""
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(transport=transport, timeout=10) as client:
        answer = client.post(
            f"{tether.url}/hooks/claude-code",
            json={"cwd": "/work", **body},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def prompt(tether: RunningTether, key: str, address: str) -> None:
    hook(
        tether,
        key,
        {"session_id": "s1", "hook_event_name": "UserPromptSubmit", "prompt": "hi"},
        address,
    )


def tool_call(tether: RunningTether, key: str, tool: str, tool_input: dict[str, Any]) -> None:
    answer = hook(
        tether,
        key,
        {
            "session_id": "s1",
            "hook_event_name": "PreToolUse",
            "tool_name": tool,
            "tool_input": tool_input,
            "tool_use_id": f"toolu_{time.monotonic_ns()}",
        },
    )
    assert answer["hookSpecificOutput"]["permissionDecision"] == "allow", answer


def test_a_key_used_from_two_addresses_alternately_warns(cli, tether_any: RunningTether) -> None:
    tether_any.create_project("own")
    tether_any.create_project("shared")
    own = tether_any.create_agent("solo", "own")
    shared = tether_any.create_agent("team", "shared")
    for _ in range(3):
        prompt(tether_any, own, "127.0.0.1")
    for address in ("127.0.0.1", "127.0.0.2", "127.0.0.1", "127.0.0.2"):
        prompt(tether_any, shared, address)
    time.sleep(1.5)  # key use is written about once a second
    passed = check(cli, "own", "shared_keys")
    assert passed["status"] == "pass", passed
    warned = check(cli, "shared", "shared_keys")
    assert warned["status"] == "warn", warned
    assert "127.0.0.1" in warned["evidence"] and "127.0.0.2" in warned["evidence"]
    assert "3 switches" in warned["evidence"] and "of team" in warned["evidence"]
    assert warned["fix"].startswith("tether agents create NAME -p shared")


def test_a_laptop_changing_networks_once_is_not_sharing(cli, tether_any: RunningTether) -> None:
    tether_any.create_project("roams")
    key = tether_any.create_agent("laptop", "roams")
    for address in ("127.0.0.1", "127.0.0.1", "127.0.0.3", "127.0.0.3"):
        prompt(tether_any, key, address)
    time.sleep(1.5)
    assert check(cli, "roams", "shared_keys")["status"] == "pass"


def test_aws_commands_from_an_agent_without_broker_keys_warn(
    cli, tether_any: RunningTether
) -> None:
    tether_any.create_project("brokered")
    tether_any.create_project("around")
    brokered = tether_any.create_agent("ops", "brokered")
    around = tether_any.create_agent("cowboy", "around")
    assert check(cli, "around", "cloud_broker")["status"] == "pass"
    issued = tether_any.call("POST", "/agents/ops/aws-keys")
    assert issued.status_code in (200, 201), issued.text
    for key in (brokered, around):
        tool_call(tether_any, key, "Bash", {"command": "aws s3 ls s3://team-bucket"})
        tool_call(tether_any, key, "Bash", {"command": "aws ec2 describe-instances"})
    passed = check(cli, "brokered", "cloud_broker")
    assert passed["status"] == "pass", passed
    assert "all from agents with broker keys" in passed["evidence"]
    warned = check(cli, "around", "cloud_broker")
    assert warned["status"] == "warn", warned
    assert "2 aws commands" in warned["evidence"] and "cowboy: 2" in warned["evidence"]
    assert warned["fix"].startswith("tether agents aws-keys cowboy")


def test_mcp_tools_of_an_unregistered_server_warn(cli, tether_any: RunningTether) -> None:
    tether_any.create_project("listed")
    tether_any.create_project("unlisted")
    listed = tether_any.create_agent("a1", "listed")
    unlisted = tether_any.create_agent("a2", "unlisted")
    added = tether_any.call(
        "POST",
        "/projects/listed/mcp-servers",
        json={"name": "github", "url": "https://mcp.example.test/mcp", "auth": "none"},
    )
    assert added.status_code == 201, added.text
    for key in (listed, unlisted):
        tool_call(tether_any, key, "mcp__github__create_issue", {"title": "t"})
        tool_call(tether_any, key, "mcp__tether__task_status", {})
    passed = check(cli, "listed", "mcp_servers")
    assert passed["status"] == "pass", passed
    warned = check(cli, "unlisted", "mcp_servers")
    assert warned["status"] == "warn", warned
    assert "github (1 calls)" in warned["evidence"] and "tether (" not in warned["evidence"]
    assert warned["fix"] == "tether mcp add -p unlisted github --url URL"


def signed_sts_call(tether: RunningTether, pair: AgentPair, address: str) -> None:
    """A SigV4-signed call to the broker door from ``address``, as an AWS SDK makes it."""
    url = f"{tether.url}/aws/"
    body = "Action=GetCallerIdentity&Version=2011-06-15"
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    SigV4Auth(Credentials(pair.access_key_id, pair.secret_access_key), "sts", "us-east-1").add_auth(
        request
    )
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(transport=transport, timeout=10) as client:
        client.post(url, content=body, headers=dict(request.headers))


def test_a_broker_key_pair_used_from_two_addresses_alternately_warns(
    cli, tether_any: RunningTether
) -> None:
    tether_any.create_project("cloudy")
    tether_any.create_agent("deployer", "cloudy")
    pair = issue_aws_keys(tether_any, "deployer")
    for address in ("127.0.0.1", "127.0.0.4", "127.0.0.1"):
        signed_sts_call(tether_any, pair, address)
    time.sleep(1.5)
    warned = check(cli, "cloudy", "shared_keys")
    assert warned["status"] == "warn", warned
    assert f"AWS {pair.access_key_id} of deployer" in warned["evidence"]
    assert "127.0.0.4" in warned["evidence"]
