"""One convention: every command that acts on a project takes -p/--project (the older
positional form still works), and every command can answer in JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.server import RunningTether
from tether.cli.main import app


@pytest.fixture
def cli(tether: RunningTether, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("TETHER_URL", tether.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", tether.admin_token)
    tether.create_project("p")
    return CliRunner()


def run(cli: CliRunner, *args: str, stdin: str | None = None) -> str:
    result = cli.invoke(app, list(args), input=stdin)
    assert result.exit_code == 0, result.output
    return result.output


def test_project_commands_take_the_project_as_an_option_or_a_positional(cli: CliRunner) -> None:
    by_option = json.loads(run(cli, "guards", "show", "-p", "p", "--json"))
    by_position = json.loads(run(cli, "guards", "show", "p", "--json"))
    assert by_option == by_position and by_option["project"] == "p"
    run(cli, "guards", "set", "--project", "p", "--tool-repeat-limit", "3")
    assert json.loads(run(cli, "guards", "show", "p", "--json"))["tool_repeat_limit"] == 3
    run(cli, "credentials", "set", "-p", "p", stdin="sk-ant-api03-test-secret\n")
    (stored,) = json.loads(run(cli, "credentials", "list", "-p", "p", "--json"))
    assert stored["provider"] == "anthropic" and "secret" not in stored
    added = json.loads(
        run(
            cli,
            "webhooks",
            "add",
            "-p",
            "p",
            "https://hooks.example/a",
            "--json",
        )
    )
    old_form = json.loads(run(cli, "webhooks", "add", "p", "https://hooks.example/b", "--json"))
    assert len(json.loads(run(cli, "webhooks", "list", "-p", "p", "--json"))) == 2
    removed = json.loads(run(cli, "webhooks", "delete", "-p", "p", added["id"], "--json"))
    assert removed == {"removed": "webhook", "id": added["id"]}
    run(cli, "webhooks", "delete", "p", old_form["id"])
    assert json.loads(run(cli, "webhooks", "list", "p", "--json")) == []


def test_a_project_given_twice_or_not_at_all_is_a_clear_error(cli: CliRunner) -> None:
    twice = cli.invoke(app, ["guards", "show", "p", "-p", "q"])
    assert twice.exit_code != 0 and "two projects given" in twice.output
    missing = cli.invoke(app, ["guards", "show"])
    assert missing.exit_code != 0 and "-p/--project" in missing.output


def test_since_and_until_take_the_same_formats_everywhere(cli: CliRunner) -> None:
    for command in (["audit", "query"], ["spend", "--by", "day"]):
        for since in ("2026-01-01", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00"):
            run(cli, *command, "--since", since, "--until", "2099-12-31", "--json")
        wrong = cli.invoke(app, [*command, "--since", "last tuesday"])
        assert wrong.exit_code != 0 and "give an ISO 8601 time" in wrong.output


def test_budgets_are_deleted_by_the_id_their_table_shows(
    cli: CliRunner, tether: RunningTether
) -> None:
    made = tether.call("PUT", "/budgets", json={"project": "p", "period": "daily", "limit_usd": 3})
    shown = made.json()["id"][:8]
    assert shown in run(cli, "budgets", "list")
    unknown = cli.invoke(app, ["budgets", "delete", "zz"])
    assert unknown.exit_code != 0 and "no budget with an id starting 'zz'" in unknown.output
    deleted = json.loads(run(cli, "budgets", "delete", shown, "--json"))
    assert deleted == {"deleted": "budget", "id": made.json()["id"]}
    assert json.loads(run(cli, "budgets", "list", "--json")) == []


def test_every_command_that_reports_can_answer_in_json(
    cli: CliRunner, tether: RunningTether, tmp_path: Path
) -> None:
    assert json.loads(run(cli, "version", "--json"))["version"]
    policy = tmp_path / "p.cedar"
    policy.write_text("permit(principal, action, resource);\n")
    changed = json.loads(run(cli, "policy", "diff", str(policy), "-p", "p", "--json"))
    assert changed["changed"] is False and changed["diff"] == ""
    starter = json.loads(
        run(cli, "policy", "init", "--claude-code", "--root", str(tmp_path), "--json")
    )
    assert "permit" in starter["source"] and starter["allows"] and starter["version"] is None
    out = tmp_path / "trail.jsonl"
    exported = json.loads(run(cli, "audit", "export", "--out", str(out), "--json"))
    assert exported["events"] >= 1 and exported["anchor"].count(":") == 1
