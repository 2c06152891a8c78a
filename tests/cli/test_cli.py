"""The tether CLI against a real server: tables by default, --json for scripts, clear errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.support.server import RunningTether
from tether.cli.main import app


@pytest.fixture
def cli(tether_any: RunningTether, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TETHER_URL", tether_any.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", tether_any.admin_token)
    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), input=input)

    return run


def test_projects_and_agents_round_trip(cli, tether_any: RunningTether) -> None:
    assert cli("projects", "create", "payments").exit_code == 0
    created = cli("agents", "create", "claude-deploy-01", "--project", "payments", "--json")
    assert created.exit_code == 0, created.output
    key = json.loads(created.output)["key"]
    assert key.startswith("tth_")

    table = cli("agents", "list")
    assert table.exit_code == 0
    assert "claude-deploy-01" in table.output and "active" in table.output
    assert key not in table.output

    listed = json.loads(cli("agents", "list", "--project", "payments", "--json").output)
    assert [a["name"] for a in listed] == ["claude-deploy-01"]


def test_human_create_prints_the_key_once(cli) -> None:
    cli("projects", "create", "p")
    result = cli("agents", "create", "a1", "-p", "p")
    assert result.exit_code == 0
    assert "tth_" in result.output and "shown once" in result.output


def test_quarantine_release_revoke(cli, tether_any: RunningTether) -> None:
    cli("projects", "create", "p")
    cli("agents", "create", "a1", "-p", "p", "--json")
    assert json.loads(cli("agents", "quarantine", "a1", "--json").output)["state"] == "quarantined"
    assert json.loads(cli("agents", "release", "a1", "--json").output)["state"] == "active"
    assert json.loads(cli("agents", "revoke", "a1", "--json").output)["state"] == "revoked"
    again = cli("agents", "release", "a1")
    assert again.exit_code == 1
    assert "revoked" in again.output


def test_keys_rotate_with_grace(cli) -> None:
    cli("projects", "create", "p")
    old = json.loads(cli("agents", "create", "a1", "-p", "p", "--json").output)["key"]
    rotated = cli("keys", "rotate", "a1", "--grace", "10m", "--json")
    assert rotated.exit_code == 0, rotated.output
    issued = json.loads(rotated.output)
    assert issued["key"] != old and issued["previous_keys_expire_at"]
    keys = json.loads(cli("keys", "list", "a1", "--json").output)
    assert len(keys) == 2
    assert sum(1 for k in keys if k["expires_at"]) == 1
    assert [k["last_used_at"] for k in keys] == [None, None]


def test_bad_grace_is_a_clear_error(cli) -> None:
    result = cli("keys", "rotate", "a1", "--grace", "ten minutes")
    assert result.exit_code == 1
    assert "--grace" in result.output and "10m" in result.output


def test_credentials_set_reads_stdin_and_never_echoes(cli) -> None:
    cli("projects", "create", "p")
    secret = "sk-ant-api03-do-not-print-me"
    result = cli("credentials", "set", "p", "--provider", "anthropic", input=secret + "\n")
    assert result.exit_code == 0, result.output
    assert secret not in result.output
    listed = cli("credentials", "list", "p", "--json")
    assert json.loads(listed.output)[0]["provider"] == "anthropic"
    assert secret not in listed.output


def test_errors_exit_non_zero_with_the_server_message(cli) -> None:
    result = cli("agents", "show", "ghost")
    assert result.exit_code == 1
    assert "no agent named 'ghost'" in result.output
    duplicate = cli("projects", "create", "p"), cli("projects", "create", "p")
    assert duplicate[1].exit_code == 1
    assert "already exists" in duplicate[1].output


def test_viewer_token_cannot_write_from_the_cli(
    cli, tether_any: RunningTether, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = json.loads(cli("tokens", "create", "dash", "--role", "viewer", "--json").output)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", created["secret"])
    assert cli("projects", "list").exit_code == 0
    denied = cli("projects", "create", "nope")
    assert denied.exit_code == 1
    assert "read-only" in denied.output


def test_unreachable_server_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", "tta_x")
    result = CliRunner().invoke(app, ["projects", "list"])
    assert result.exit_code == 3
    assert "cannot reach tether" in result.output


def test_audit_query_and_sessions_list(cli, tether_any: RunningTether) -> None:
    import httpx

    cli("projects", "create", "p")
    key = json.loads(cli("agents", "create", "a1", "-p", "p", "--json").output)["key"]
    httpx.post(
        f"{tether_any.url}/v1/authorize",
        json={"session_id": "s-42", "action": "tool:Bash", "resource": "ls"},
        headers={"x-api-key": key},
    )
    events = json.loads(cli("audit", "query", "--agent", "a1", "--json").output)
    assert [(e["action"], e["session_id"]) for e in events] == [("tool:Bash", "s-42")]
    sessions = json.loads(cli("sessions", "list", "--agent", "a1", "--json").output)
    assert [s["id"] for s in sessions] == ["s-42"]
    bad = cli("audit", "query", "--since", "yesterday")
    assert bad.exit_code == 1 and "ISO 8601" in bad.output
