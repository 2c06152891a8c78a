"""``tether slack``: the signing secret read from stdin and never printed, Slack users
mapped to operators per project, listed, unmapped."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner, Result

from tests.support.server import RunningTether
from tether.cli.main import app
from tether.runtime import BOOTSTRAP_TOKEN_NAME

SECRET = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def cli(tether: RunningTether, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TETHER_URL", tether.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", tether.admin_token)
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=stdin)

    return run


def test_the_signing_secret_is_read_from_stdin_and_never_printed(cli, tether) -> None:  # type: ignore[no-untyped-def]
    before = cli("slack", "status", "--json")
    assert before.exit_code == 0 and json.loads(before.stdout)["set"] is False

    stored = cli("slack", "set-signing-secret", "--json", stdin=SECRET + "\n")

    assert stored.exit_code == 0, stored.output
    assert json.loads(stored.stdout)["set"] is True
    after = cli("slack", "status")
    assert after.exit_code == 0 and f"admin:{BOOTSTRAP_TOKEN_NAME}" in after.stdout
    assert SECRET not in stored.output + after.output
    empty = cli("slack", "set-signing-secret", stdin="\n")
    assert empty.exit_code == 1 and "no signing secret" in empty.output
    short = cli("slack", "set-signing-secret", stdin="short\n")
    assert short.exit_code == 1 and "secret" in short.output and "short" not in short.stdout


def test_slack_users_are_mapped_listed_and_unmapped(cli, tether) -> None:  # type: ignore[no-untyped-def]
    tether.create_project("p")
    mapped = cli(
        "slack", "map-user", "U0ALICE1", BOOTSTRAP_TOKEN_NAME, "--team", "T0ACME01", "-p", "p"
    )
    assert mapped.exit_code == 0, mapped.output
    again = cli(
        "slack", "map-user", "U0ALICE1", BOOTSTRAP_TOKEN_NAME, "--team", "T0ACME01", "-p", "p"
    )
    assert again.exit_code == 1 and "already mapped" in again.output
    nobody = cli("slack", "map-user", "U0BOB001", "nobody", "--team", "T0ACME01", "-p", "p")
    assert nobody.exit_code == 1 and "not a live admin token" in nobody.output

    listed = cli("slack", "users", "-p", "p", "--json")
    assert [(u["team_id"], u["user_id"], u["operator"]) for u in json.loads(listed.stdout)] == [
        ("T0ACME01", "U0ALICE1", BOOTSTRAP_TOKEN_NAME)
    ]

    removed = cli("slack", "unmap-user", "U0ALICE1", "--team", "T0ACME01", "-p", "p")
    assert removed.exit_code == 0, removed.output
    assert json.loads(cli("slack", "users", "p", "--json").stdout) == []
    gone = cli("slack", "unmap-user", "U0ALICE1", "--team", "T0ACME01", "-p", "p")
    assert gone.exit_code == 1 and "not mapped" in gone.output
