"""``tether budgets`` against a real server."""

from __future__ import annotations

import json

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


def test_set_and_list(cli, gateway: RunningTether) -> None:
    gateway.create_agent("claude-deploy-01", "p")
    result = cli("budgets", "set", "--project", "p", "--daily", "20", "--monthly", "400", "--json")
    assert result.exit_code == 0, result.output
    assert sorted(b["period"] for b in json.loads(result.output)) == ["daily", "monthly"]
    assert (
        cli(
            "budgets", "set", "--agent", "claude-deploy-01", "--project", "p", "--daily", "2"
        ).exit_code
        == 0
    )
    assert cli("budgets", "set", "--project", "p", "--session-limit", "5").exit_code == 0
    listed = json.loads(cli("budgets", "list", "--project", "p", "--json").output)
    summary = sorted((b["scope"], b["period"], b["limit_usd"]) for b in listed)
    assert summary == [
        ("agent", "daily", 2.0),
        ("project", "daily", 20.0),
        ("project", "monthly", 400.0),
        ("session", "session", 5.0),
    ]
    table = cli("budgets", "list")
    assert table.exit_code == 0 and "400.0" in table.output and "monthly" in table.output


def test_bad_limits_are_clear_errors(cli) -> None:
    negative = cli("budgets", "set", "--project", "p", "--daily", "-3")
    assert negative.exit_code == 1 and "limit_usd" in negative.output
    nothing = cli("budgets", "set", "--project", "p")
    assert nothing.exit_code == 1 and "--daily" in nothing.output
    not_a_number = cli("budgets", "set", "--project", "p", "--daily", "lots")
    assert not_a_number.exit_code == 2
    bad_thresholds = cli("budgets", "set", "--project", "p", "--daily", "1", "--thresholds", "half")
    assert bad_thresholds.exit_code == 1 and "percentages" in bad_thresholds.output


def test_spend_report(cli, gateway: RunningTether) -> None:
    import time

    import httpx

    key = gateway.create_agent("a", "p")
    httpx.post(
        f"{gateway.url}/v1/messages",
        json={
            "model": "claude-haiku-5-5",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
        },
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
    )
    deadline = time.monotonic() + 5
    while not (rows := json.loads(cli("spend", "--by", "agent", "--json").output)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert rows[0]["agent"] == "a" and rows[0]["requests"] == 1 and rows[0]["cost_usd"] > 0
    table = cli("spend", "--by", "day")
    assert table.exit_code == 0 and "spend by day" in table.output
    bad = cli("spend", "--by", "fortnight")
    assert bad.exit_code == 1 and "by=" in bad.output
