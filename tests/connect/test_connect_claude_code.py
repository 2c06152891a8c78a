"""``tether connect claude-code``: the settings it writes, what it keeps, and the real Claude
Code CLI started with no ``ANTHROPIC_*`` variable going through tether afterwards."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.support.claude_code import CLAUDE
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tether.cli.main import app
from tether.connect.agent_sdk import tether_agent_options
from tether.fakes.anthropic import FakeReply

Cli = Callable[..., Result]


@pytest.fixture
def cli(gateway: RunningTether, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("TETHER_URL", gateway.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", gateway.admin_token)
    monkeypatch.setenv("TETHER_DATA_DIR", str(tmp_path / "client"))
    monkeypatch.delenv("TETHER_KEY", raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    (path / ".claude").mkdir(parents=True)
    return path


def settings_of(repo: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((repo / ".claude" / "settings.local.json").read_text())
    return loaded


def test_connect_merges_into_existing_settings_and_keeps_the_key_out_of_sight(
    cli: Cli, gateway: RunningTether, repo: Path, tmp_path: Path
) -> None:
    own_hook = {"matcher": "Bash", "hooks": [{"type": "command", "command": "./lint.sh"}]}
    (repo / ".claude" / "settings.local.json").write_text(
        json.dumps(
            {
                "model": "opus",
                "env": {"FOO": "bar", "ANTHROPIC_API_KEY": "sk-ant-old-direct-key"},
                "hooks": {"PreToolUse": [own_hook]},
                "permissions": {"allow": ["Bash(make:*)"]},
            }
        )
    )
    (repo / ".mcp.json").write_text(json.dumps({"mcpServers": {"linear": {"type": "http"}}}))

    done = cli("connect", "claude-code", "-p", "p", "--agent", "dev-01", "--dir", str(repo))
    assert done.exit_code == 0, done.output
    key_file = tmp_path / "client" / "agents" / "dev-01.key"
    key = key_file.read_text().strip()
    assert key.startswith("tth_") and key not in done.output
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    settings_file = repo / ".claude" / "settings.local.json"
    assert stat.S_IMODE(settings_file.stat().st_mode) == 0o600

    settings = settings_of(repo)
    assert settings["model"] == "opus" and settings["permissions"] == {"allow": ["Bash(make:*)"]}
    assert settings["env"]["FOO"] == "bar" and "ANTHROPIC_API_KEY" not in settings["env"]
    assert settings["env"]["ANTHROPIC_BASE_URL"] == gateway.url
    assert settings["apiKeyHelper"] == f"cat {key_file}"
    pre = settings["hooks"]["PreToolUse"]
    assert pre[0] == own_hook
    assert pre[1]["hooks"][0]["url"] == f"{gateway.url}/hooks/claude-code"
    assert pre[1]["hooks"][0]["onFailure"] == "block"
    assert {"PostToolUse", "Stop", "PostToolBatch", "SessionStart"} <= set(settings["hooks"])
    mcp = json.loads((repo / ".mcp.json").read_text())["mcpServers"]
    assert set(mcp) == {"linear", "tether"} and key not in json.dumps(mcp)

    again = cli("connect", "claude-code", "-p", "p", "--agent", "dev-01", "--dir", str(repo))
    assert again.exit_code == 0, again.output
    assert "unchanged" in again.output and settings_of(repo) == settings
    agents = gateway.call("GET", "/agents", params={"project": "p"}).json()
    assert [a["name"] for a in agents].count("dev-01") == 1


def test_dry_run_prints_the_diff_and_changes_nothing(
    cli: Cli, gateway: RunningTether, repo: Path
) -> None:
    shown = cli(
        "connect", "claude-code", "-p", "p", "--agent", "dry-01", "--dir", str(repo), "--dry-run"
    )
    assert shown.exit_code == 0, shown.output
    assert "+++" in shown.output and "hooks/claude-code" in shown.output
    assert not (repo / ".claude" / "settings.local.json").exists()
    assert not (repo / ".mcp.json").exists()
    agents = gateway.call("GET", "/agents", params={"project": "p"}).json()
    assert "dry-01" not in [a["name"] for a in agents]


def test_an_existing_agent_without_a_local_key_needs_rotate(
    cli: Cli, gateway: RunningTether, repo: Path
) -> None:
    old_key = gateway.create_agent("known-01", "p")
    refused = cli("connect", "claude-code", "-p", "p", "--agent", "known-01", "--dir", str(repo))
    assert refused.exit_code == 1 and "--rotate" in refused.output
    rotated = cli(
        "connect", "claude-code", "-p", "p", "--agent", "known-01", "--dir", str(repo), "--rotate"
    )
    assert rotated.exit_code == 0, rotated.output
    assert settings_of(repo)["env"]["TETHER_KEY"] not in (old_key, "")


def test_check_proves_the_round_trip_and_fails_on_a_revoked_key(
    cli: Cli, gateway: RunningTether, repo: Path
) -> None:
    assert (
        cli("connect", "claude-code", "-p", "p", "--agent", "chk-01", "--dir", str(repo)).exit_code
        == 0
    )
    checked = cli("connect", "claude-code", "--check", "--dir", str(repo))
    assert checked.exit_code == 0, checked.output
    assert checked.output.count("ok") >= 4
    session = checked.output.split("recorded in session ")[1].split()[0]
    events = gateway.call("GET", "/audit", params={"session": session}).json()
    sources = {e["source"] for e in events}
    assert {"claude_code_hook", "anthropic"} <= sources, events

    revoked = gateway.call("POST", "/agents/chk-01/revoke", json={"reason": "gone"})
    assert revoked.status_code == 200, revoked.text
    failed = cli("connect", "claude-code", "--check", "--dir", str(repo))
    assert failed.exit_code == 1 and "FAIL" in failed.output


def test_managed_settings_hold_no_key(cli: Cli, gateway: RunningTether) -> None:
    printed = cli("connect", "claude-code", "--managed")
    assert printed.exit_code == 0, printed.output
    settings = json.loads(printed.stdout)
    assert settings["apiKeyHelper"] == 'printf %s "$TETHER_KEY"'
    assert "TETHER_KEY" not in settings["env"] and "tth_" not in printed.stdout


def _claude_in(repo: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """``claude -p`` as a developer starts it in ``repo``: nothing of tether's in the
    environment, only what ``tether connect`` wrote."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE", "TETHER_"))
    }
    env |= {"HOME": str(home), "IS_SANDBOX": "1", "DISABLE_AUTOUPDATER": "1"}
    env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1"
    args = [str(CLAUDE), "-p", "list the files", "--permission-mode", "bypassPermissions"]
    args += ["--output-format", "json", "--session-id", str(uuid.uuid4()), "--max-turns", "3"]
    return subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=180)


def test_claude_code_connected_by_tether_connect_alone_goes_through_tether(
    cli: Cli, gateway: RunningTether, upstream: RunningFake, repo: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    upstream.fake.enqueue(
        FakeReply(kind="tool_use", tool_name="Bash", tool_input={"command": "ls"})
    )
    upstream.fake.default = FakeReply(kind="text", text="done")
    done = cli("connect", "claude-code", "-p", "p", "--agent", "cc-01", "--dir", str(repo))
    assert done.exit_code == 0, done.output

    run = _claude_in(repo, home)
    assert run.returncode == 0, run.stderr[-2000:] + run.stdout[-2000:]
    session = json.loads(run.stdout)["session_id"]
    events = gateway.call("GET", "/audit", params={"session": session, "limit": 200}).json()
    assert all(e["agent"] == "cc-01" for e in events if e["agent"])
    models = [e for e in events if e["action"].startswith("model:")]
    decided = [
        e
        for e in events
        if e["source"] == "claude_code_hook" and e["action"] != "hook:SessionStart"
    ]
    assert models, events
    assert any(e["action"] == "file:Read" and e["result"] == "allow" for e in decided), decided
    assert any(e["action"] == "hook:SessionStart" for e in events), "the SessionStart shim ran"
    assert upstream.fake.received and all(
        r.headers.get("x-api-key") == upstream.fake.api_key for r in upstream.fake.received
    )


def test_agent_sdk_options_send_the_sdk_through_tether(gateway: RunningTether) -> None:
    options = tether_agent_options(gateway.url + "/", "tth_example")
    assert options["env"]["ANTHROPIC_BASE_URL"] == gateway.url
    hooks = json.loads(options["settings"])["hooks"]
    assert hooks["PreToolUse"][0]["hooks"][0]["url"] == f"{gateway.url}/hooks/claude-code"
    assert "SessionStart" not in hooks


def test_rotate_with_grace_keeps_the_other_keys_for_that_long(
    cli: Cli, gateway: RunningTether, repo: Path
) -> None:
    old_key = gateway.create_agent("graced-01", "p")
    rotated = cli(
        "connect",
        "claude-code",
        "-p",
        "p",
        "--agent",
        "graced-01",
        "--dir",
        str(repo),
        "--rotate",
        "--grace",
        "10m",
    )
    assert rotated.exit_code == 0, rotated.output
    keys = gateway.call("GET", "/agents/graced-01/keys").json()
    old = next(k for k in keys if k["prefix"] == old_key[:10])
    assert old["expires_at"] is not None, keys
    ends_in = datetime.fromisoformat(old["expires_at"]) - datetime.now(UTC)
    assert timedelta(minutes=9) < ends_in <= timedelta(minutes=10), old
    refused = cli(
        "connect",
        "claude-code",
        "-p",
        "p",
        "--agent",
        "graced-01",
        "--dir",
        str(repo),
        "--rotate",
        "--grace",
        "soon",
    )
    assert refused.exit_code == 1 and "--grace" in refused.output
