"""Fire drills through the real doors: the canary is refused in time, nobody else is."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from tests.support.server import RunningTether
from tether.cli.main import app


@pytest.fixture
def cli(gateway: RunningTether, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TETHER_URL", gateway.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", gateway.admin_token)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def model_call(gateway: RunningTether, key: str, session: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/messages",
        json={"model": "claude-haiku-5-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": key, "X-Claude-Code-Session-Id": session, "anthropic-version": "2023-06-01"},
    )


def drill_events(gateway: RunningTether, kind: str) -> list[dict]:
    found = gateway.call("GET", "/audit", params={"action": f"drill:{kind}"})
    assert found.status_code == 200, found.text
    return found.json()


@pytest.mark.parametrize("kind", ["kill", "pause", "rotate"])
def test_drill_refuses_the_canary_and_leaves_the_real_agent_working(
    cli, gateway: RunningTether, kind: str
) -> None:
    key = gateway.create_agent("real", "p")
    assert model_call(gateway, key, "real-1").status_code == 200
    ran = cli("drill", kind, "-p", "p", "--json")
    assert ran.exit_code == 0, ran.output
    report = json.loads(ran.output)
    assert report["ok"] is True, report
    assert report["seconds"] < 5
    assert model_call(gateway, key, "real-1").status_code == 200
    agents = gateway.call("GET", "/agents", params={"project": "p"}).json()
    canaries = [a for a in agents if a["name"].startswith("canary-")]
    assert [a["state"] for a in canaries] == ["revoked"]
    print(report)
