"""The kill switch from the CLI: sessions kill, agents stop, projects pause, pause --all."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

from tests.support.model_calls import model_call
from tests.support.server import RunningTether
from tether.cli.main import app


@pytest.fixture
def cli(gateway: RunningTether, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TETHER_URL", gateway.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", gateway.admin_token)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_sessions_kill_and_show(cli, gateway: RunningTether) -> None:
    key = gateway.create_agent("a", "p")
    assert model_call(gateway, key, "s-1").status_code == 200
    killed = cli("sessions", "kill", "s-1", "--reason", "looping", "--json")
    assert killed.exit_code == 0, killed.output
    assert json.loads(killed.output)["state"] == "terminated"
    refused = model_call(gateway, key, "s-1")
    assert refused.status_code == 423 and "looping" in refused.json()["error"]["message"]
    shown = json.loads(cli("sessions", "show", "s-1", "--json").output)
    assert shown["state_by"] == "admin:bootstrap"
    listed = json.loads(cli("sessions", "list", "--state", "terminated", "--json").output)
    assert [s["id"] for s in listed] == ["s-1"]


def test_agents_stop_and_release(cli, gateway: RunningTether) -> None:
    key = gateway.create_agent("a", "p")
    assert json.loads(cli("agents", "stop", "a", "--json").output)["state"] == "stopped"
    assert model_call(gateway, key, "x").status_code == 423
    assert json.loads(cli("agents", "release", "a", "--json").output)["state"] == "active"
    assert model_call(gateway, key, "x").status_code == 200


def test_projects_pause_resume(cli, gateway: RunningTether) -> None:
    key = gateway.create_agent("a", "p")
    paused = cli("projects", "pause", "p", "--reason", "incident", "--json")
    assert json.loads(paused.output)["paused"] is True
    assert model_call(gateway, key, "x").status_code == 423
    assert json.loads(cli("projects", "resume", "p", "--json").output)["paused"] is False
    assert model_call(gateway, key, "x").status_code == 200


def test_pause_all_needs_all_flag(cli, gateway: RunningTether) -> None:
    key = gateway.create_agent("a", "p")
    unconfirmed = cli("pause")
    assert unconfirmed.exit_code == 1 and "--all" in unconfirmed.output
    assert model_call(gateway, key, "x").status_code == 200
    assert cli("pause", "--all", "--reason", "upstream outage").exit_code == 0
    refused = model_call(gateway, key, "x")
    assert refused.status_code == 423 and "upstream outage" in refused.json()["error"]["message"]
    assert cli("resume", "--all").exit_code == 0
    assert model_call(gateway, key, "x").status_code == 200


def test_session_usage_is_reported(cli, gateway: RunningTether) -> None:
    key = gateway.create_agent("a", "p")
    for _ in range(3):
        assert model_call(gateway, key, "metered").status_code == 200
    deadline = time.monotonic() + 5
    while True:
        shown = json.loads(cli("sessions", "show", "metered", "--json").output)
        if shown["request_count"] == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert shown["request_count"] == 3
    assert shown["input_tokens"] > 0 and shown["output_tokens"] > 0
    assert shown["cost_usd"] > 0
