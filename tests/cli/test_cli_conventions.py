"""CLI conventions against a real server: server text printed as text (never as Rich
markup), ``--version``, lists that say when more is available, streamed audit runs."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from tests.support.server import RunningTether
from tether.cli.main import app


@pytest.fixture
def cli(tether: RunningTether, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TETHER_URL", tether.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", tether.admin_token)
    runner = CliRunner()

    def run(*args: str) -> Result:
        result = runner.invoke(app, list(args))
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            result.exception
        )
        return result

    return run


def _sessions(tether: RunningTether, count: int) -> str:
    tether.create_project("p")
    key = tether.create_agent("a", "p")
    for number in range(count):
        body: dict[str, Any] = {
            "session_id": f"s-{number}",
            "action": "s3:GetObject",
            "resource": f"arn:aws:s3:::b/{number}",
        }
        answer = httpx.post(f"{tether.url}/v1/authorize", json=body, headers={"x-api-key": key})
        assert answer.status_code == 200, answer.text
    return key


def test_server_text_is_never_read_as_markup(cli) -> None:  # type: ignore[no-untyped-def]
    missing = cli("projects", "show", "nope")
    assert missing.exit_code == 1
    assert "[not_found, HTTP 404]" in missing.output

    odd = cli("sessions", "show", "[/x]")
    assert odd.exit_code == 1
    assert "HTTP 404" in odd.output


def test_table_cells_with_brackets_print_as_they_are(cli, tether: RunningTether) -> None:  # type: ignore[no-untyped-def]
    tether.create_project("p")
    key = tether.create_agent("a", "p")
    body = {"session_id": "[/bold]x", "action": "s3:GetObject", "resource": "arn:aws:s3:::b/k"}
    assert httpx.post(f"{tether.url}/v1/authorize", json=body, headers={"x-api-key": key})
    listed = cli("sessions", "list")
    assert listed.exit_code == 0
    assert "[/bold]x" in listed.output


def test_version(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("--version")
    assert result.exit_code == 0
    assert result.output.startswith("tether ")


def test_sessions_list_pages_and_says_more_is_available(cli, tether: RunningTether) -> None:  # type: ignore[no-untyped-def]
    _sessions(tether, 3)
    first = cli("sessions", "list", "--limit", "2", "--json")
    assert first.exit_code == 0
    assert "more available: run again with --before " in first.output
    page = json.loads(first.stdout)
    assert len(page) == 2
    cursor = first.output.split("--before ")[1].split()[0]

    rest = cli("sessions", "list", "--limit", "2", "--before", cursor, "--json")
    assert rest.exit_code == 0
    assert "more available" not in rest.output
    ids = [s["id"] for s in page] + [s["id"] for s in json.loads(rest.stdout)]
    assert sorted(ids) == ["s-0", "s-1", "s-2"]

    everything = cli("sessions", "list")
    assert "more available" not in everything.output
    bad = cli("sessions", "list", "--before", "yesterday")
    assert bad.exit_code == 1 and "not a cursor" in bad.output


def test_audit_query_pages_and_says_more_is_available(cli, tether: RunningTether) -> None:  # type: ignore[no-untyped-def]
    _sessions(tether, 3)
    first = cli("audit", "query", "--agent", "a", "--limit", "2")
    assert first.exit_code == 0
    assert "more available: run again with --after-seq " in first.output
    after = first.output.split("--after-seq ")[1].split()[0]
    rest = cli("audit", "query", "--agent", "a", "--limit", "2", "--after-seq", after, "--json")
    assert rest.exit_code == 0
    assert len(json.loads(rest.stdout)) == 1


def test_audit_verify_and_export_stream_with_a_timeout(
    cli, tether: RunningTether, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    _sessions(tether, 3)
    verified = cli("audit", "verify", "--timeout", "120")
    assert verified.exit_code == 0, verified.output
    assert verified.output.startswith("intact: ")
    out = tmp_path / "trail.jsonl"
    exported = cli("audit", "export", "--out", str(out), "--timeout", "120")
    assert exported.exit_code == 0, exported.output
    assert len(out.read_text().splitlines()) >= 3
    zero = cli("audit", "verify", "--timeout", "0")
    assert zero.exit_code == 1 and "--timeout must be more than 0" in zero.output
