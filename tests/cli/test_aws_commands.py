"""``tether aws set-credentials`` and ``tether agents aws-keys`` against a real server."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner, Result

from tests.support.server import RunningTether
from tether.cli.main import app


@pytest.fixture
def cli(tether: RunningTether, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TETHER_URL", tether.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", tether.admin_token)
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=stdin)

    return run


def test_set_credentials_and_issue_agent_keys(cli, tether: RunningTether) -> None:  # type: ignore[no-untyped-def]
    tether.create_project("p")
    tether.create_agent("bot", "p")
    stored = cli(
        "aws", "set-credentials", "p", "--endpoint-url", "http://127.0.0.1:5000",
        "--role-arn", "arn:aws:iam::123456789012:role/agents", "--json",
        stdin="AKIAREALKEY000000001\nreal-secret-value-000000000000000000000\n",
    )  # fmt: skip
    assert stored.exit_code == 0, stored.output
    shown = json.loads(stored.output)
    assert shown["role_arn"] == "arn:aws:iam::123456789012:role/agents"
    assert "real-secret" not in stored.output and "AKIAREALKEY000000001" not in stored.output
    again = cli("aws", "show", "p", "--json")
    assert "real-secret" not in again.output and json.loads(again.output)["region"] == "us-east-1"

    issued = cli("agents", "aws-keys", "bot")
    assert issued.exit_code == 0, issued.output
    assert "AWS_ACCESS_KEY_ID=AKTT" in issued.output and "AWS_SECRET_ACCESS_KEY=" in issued.output
    secret = issued.output.split("AWS_SECRET_ACCESS_KEY=")[1].split()[0]
    listed = cli("agents", "aws-keys", "bot", "--list", "--json")
    assert secret not in listed.output and len(json.loads(listed.output)) == 1
    revoked = cli("agents", "aws-keys", "bot", "--revoke", "--json")
    assert json.loads(revoked.output)["revoked"] == 1
    bad = cli("aws", "set-credentials", "p", stdin="only-one-line\n")
    assert bad.exit_code == 1
    wrong = tether.call("PUT", "/projects/p/credentials/aws", json={"secret": "not-json-at-all"})
    assert wrong.status_code == 400 and "set-credentials" in wrong.text
