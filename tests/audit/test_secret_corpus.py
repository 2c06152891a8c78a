"""Secrets fed through every front door never land in anything tether writes: the
database files (SQLite database, WAL and SHM), an export made with ``tether audit
export``, admin API reads and the server's log. The data directory and database files
are private to their owner."""

from __future__ import annotations

import logging
import secrets
import stat
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.support.databases import fetch_sql
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether, start_tether
from tether.cli.main import app
from tether.fakes.anthropic import FakeReply


def _token(n: int = 24, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _aws_secret() -> str:
    return "Ab1/" + _token(36, string.ascii_letters + string.digits + "+/")


CORPUS: dict[str, str] = {
    "anthropic_key": _token(40),
    "tether_key": _token(40),
    "aws_access_key": _token(16, string.ascii_uppercase + string.digits),
    "aws_secret_key": _aws_secret(),
    "pg_password": _token(),
    "mysql_password": _token(),
    "env_password": _token(),
    "env_token": _token(),
    "bearer": _token(32),
    "github": _token(36),
    "slack_path": _token(24),
    "attribute_password": _token(),
    "bare_password": _token(),
    "bare_secret": _token(),
    "curl_user": _token(),
    "api_key_header": _token(),
    "json_password": _token(),
    "docker_password": _token(),
    "redis_password": _token(),
    "curl_email_user": _token(),
    "sshpass_in_assignment": _token(),
    "second_cookie": _token(),
    "json_escaped_quote": _token(),
    "sshpass_attached": _token(),
    "long_s_name": _token(),
}
"""The unique part of each secret; what is searched for afterwards."""

ANTHROPIC_KEY = f"sk-ant-api03-{CORPUS['anthropic_key']}"
TETHER_KEY = f"tth_{CORPUS['tether_key']}"
AKIA = f"AKIA{CORPUS['aws_access_key']}"
SLACK_URL = f"https://hooks.slack.com/services/T0000/B0000/{CORPUS['slack_path']}"
COMMANDS = [
    f"psql postgres://admin:{CORPUS['pg_password']}@db.internal:5432/app -c 'select 1'",
    f"mysql -u root -p{CORPUS['mysql_password']} -e 'show databases'",
    f"export DB_PASSWORD={CORPUS['env_password']} && make migrate",
    f"GITHUB_TOKEN={CORPUS['env_token']} gh pr list",
    f"curl -H 'Authorization: Bearer {CORPUS['bearer']}' https://api.example.com/v1",
    f"git push https://x:ghp_{CORPUS['github']}@github.com/org/repo.git",
    f"AWS_ACCESS_KEY_ID={AKIA} AWS_SECRET_ACCESS_KEY={CORPUS['aws_secret_key']} aws s3 ls",
    f"echo {ANTHROPIC_KEY} {TETHER_KEY} {CORPUS['aws_secret_key']}",
    f"PASSWORD={CORPUS['bare_password']} ./deploy.sh",
    f"secret: {CORPUS['bare_secret']}",
    f"curl -u deploy:{CORPUS['curl_user']} https://ci.internal/job",
    f"curl -H 'X-Api-Key: {CORPUS['api_key_header']}' https://api.example.com",
    f"""curl -d '{{"user": "ann", "password": "{CORPUS["json_password"]}"}}' https://x""",
    f"docker login -u ci -p {CORPUS['docker_password']} registry.internal",
    f"redis-cli -h cache -p 6379 -a {CORPUS['redis_password']} ping",
    f"curl -u ann@example.com:'{CORPUS['curl_email_user']}' https://x.example.com",
    f"SSH_PASSWORD_CMD='x' sshpass -p {CORPUS['sshpass_in_assignment']} ssh host",
    f"curl -H 'Cookie: theme=dark; sid={CORPUS['second_cookie']}' https://x.example.com",
    f"""echo '{{"password": "x\\"{CORPUS["json_escaped_quote"]}"}}' > creds.json""",
    f"sshpass -p{CORPUS['sshpass_attached']} ssh deploy@host",
    f"PA\u017fSWORD={CORPUS['long_s_name']} ./deploy.sh",
]


def _hook(command: str, event: str) -> dict[str, Any]:
    return {
        "session_id": "d97e2169-8a54-4b1e-9f27-3c1f0f8b9a11",
        "hook_event_name": event,
        "tool_name": "Bash",
        "tool_input": {"command": command, "description": f"uses {ANTHROPIC_KEY}"},
        "tool_response": {"stdout": f"token={CORPUS['env_token']}"},
        "tool_use_id": "toolu_1",
        "cwd": "/home/dev/app",
    }


def _feed(tether: RunningTether, key: str, upstream: RunningFake) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=tether.url, timeout=30) as client:
        for command in COMMANDS:
            upstream.fake.enqueue(
                FakeReply(
                    kind="tool_use", tool_input={"command": command, "api_key": ANTHROPIC_KEY}
                )
            )
            answer = client.post(
                "/v1/messages",
                json={
                    "model": "claude-sonnet-5",
                    "max_tokens": 64,
                    "system": f"use {ANTHROPIC_KEY}",
                    "metadata": {"user_id": TETHER_KEY},
                    "messages": [{"role": "user", "content": command}],
                },
                headers={
                    **auth,
                    "anthropic-version": "2023-06-01",
                    "X-Custom-Secret": CORPUS["bearer"],
                    "anthropic-beta": ANTHROPIC_KEY,
                },
            )
            assert answer.status_code == 200, answer.text
            decided = client.post(
                "/v1/authorize",
                json={
                    "action": "db:Connect",
                    "resource": command,
                    "tags": {"note": command},
                    "attributes": {
                        "password": CORPUS["attribute_password"],
                        "api_key": ANTHROPIC_KEY,
                        "agent_key": TETHER_KEY,
                        "dsn": command,
                        "nested": [{"cmd": command}],
                    },
                },
                headers=auth,
            )
            assert decided.status_code == 200, decided.text
            for event in ("PreToolUse", "PostToolUse"):
                hooked = client.post("/hooks/claude-code", json=_hook(command, event), headers=auth)
                assert hooked.status_code == 200, hooked.text
        refused = client.post(
            "/v1/authorize",
            json={"action": "x", "resource": "y"},
            headers={"Authorization": f"Bearer {ANTHROPIC_KEY}"},
        )
        assert refused.status_code == 401
    created = tether.call("POST", "/projects/p/webhooks", json={"kind": "slack", "url": SLACK_URL})
    assert created.status_code == 201, created.text


@pytest.fixture
def gateway_any(
    tmp_path: Path, database_url: str, upstream: RunningFake
) -> Iterator[RunningTether]:
    server = start_tether(tmp_path / "data", database_url, anthropic_base_url=upstream.url)
    server.create_project("p", upstream.fake.api_key)
    yield server
    server.stop()


def _postgres_tables(database_url: str) -> dict[str, bytes]:
    """Every row of every table, as text (PostgreSQL keeps no files here to read)."""
    if not database_url.startswith("postgresql"):
        return {}
    tables = fetch_sql(
        database_url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    )
    return {
        f"table {row['table_name']}": repr(
            fetch_sql(database_url, f'SELECT * FROM "{row["table_name"]}"')
        ).encode()
        for row in tables
    }


def _everything_written(
    tether: RunningTether, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> dict[str, bytes]:
    """Every place a secret could have landed, by name."""
    runner = CliRunner()
    export = tmp_path / "export.jsonl"
    exported = runner.invoke(
        app, ["audit", "export", "--out", str(export)],
        env={"TETHER_URL": tether.url, "TETHER_ADMIN_TOKEN": tether.admin_token},
    )  # fmt: skip
    assert exported.exit_code == 0, exported.output
    written = {"export": export.read_bytes(), "log": caplog.text.encode()}
    for path in ("/audit?limit=1000", "/projects/p/webhooks", "/approvals", "/sessions"):
        read = tether.call("GET", path)
        assert read.status_code == 200, (path, read.text)
        written[f"GET {path}"] = read.content
    viewer = tether.call("POST", "/tokens", json={"name": "auditor", "role": "viewer"})
    assert viewer.status_code == 201, viewer.text
    with tether.admin(viewer.json()["secret"]) as client:
        written["viewer webhooks"] = client.get("/projects/p/webhooks").content
    for file in tmp_path.rglob("*"):
        if file.is_file() and file != export:
            written[str(file.relative_to(tmp_path))] = file.read_bytes()
    return written


def test_no_secret_survives_in_anything_tether_writes(
    gateway_any: RunningTether,
    upstream: RunningFake,
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key = gateway_any.create_agent("a", "p")
    _feed(gateway_any, key, upstream)
    written = _everything_written(gateway_any, tmp_path, caplog)
    written.update(_postgres_tables(database_url))

    if database_url.startswith("sqlite"):
        assert any(name.endswith("tether.db-wal") for name in written)
    else:
        assert "table audit_events" in written and "table webhooks" in written
    assert b"[redacted]" in written["export"]
    leaks = [
        (name, secret)
        for secret_name, secret in CORPUS.items()
        for name, content in written.items()
        if secret.encode() in content
    ]
    assert leaks == []


def test_data_directory_and_database_files_are_private(
    gateway: RunningTether, tmp_path: Path
) -> None:
    gateway.create_agent("a", "p")
    data_dir = gateway.settings.data_dir
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    database_files = [p for p in tmp_path.iterdir() if p.name.startswith("tether.db")]
    assert {p.name for p in database_files} >= {"tether.db", "tether.db-wal", "tether.db-shm"}
    for file in database_files:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
