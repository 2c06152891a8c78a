"""``tether connect``: send an agent through tether without hand-editing its settings.

``tether connect claude-code -p P --agent A`` creates the agent when needed (its key goes
straight to a 0600 file, never printed), merges tether's settings into Claude Code's, and
prints the diff first; ``--check`` proves the round trip on the live tether."""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.markup import escape

from tether.cli.client import CliError, default_token_file
from tether.cli.context import client, reports_errors
from tether.cli.durations import parse_duration
from tether.cli.output import console, errors
from tether.connect.claude_code import (
    HOOK_PATH,
    TetherConnection,
    merge_mcp_servers,
    merge_settings,
    render,
    settings_diff,
)

app = typer.Typer(
    help="Connect agents to tether: write their settings, then check the round trip.",
    no_args_is_help=True,
)

CHECK_TIMEOUT_SECONDS = 10.0
DirOption = typer.Option(
    None, "--dir", help="Connect Claude Code started in this directory (default: here)."
)


@dataclass(frozen=True, slots=True)
class SettingsPlace:
    """Which Claude Code settings file tether writes, and its ``.mcp.json`` if any."""

    settings: Path
    mcp: Path | None
    private: bool
    """True when the file may hold the agent key (written 0600, never committed)."""


def _place(directory: Path | None, user: bool) -> SettingsPlace:
    if user:
        return SettingsPlace(Path.home() / ".claude" / "settings.json", None, True)
    root = (directory or Path.cwd()).resolve()
    if not root.is_dir():
        raise CliError(f"--dir {root} is not a directory")
    return SettingsPlace(root / ".claude" / "settings.local.json", root / ".mcp.json", True)


def _key_file(agent: str) -> Path:
    return default_token_file().parent / "agents" / f"{agent}.key"


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        loaded = json.loads(path.read_text() or "{}")
    except json.JSONDecodeError as exc:
        raise CliError(
            f"{path} is not valid JSON ({exc.msg}, line {exc.lineno}); fix it first"
        ) from None
    if not isinstance(loaded, dict):
        raise CliError(f"{path} does not hold a JSON object; fix it first")
    return loaded


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    path.chmod(0o600)


def _tether_command() -> str:
    found = shutil.which("tether")
    if found:
        return found
    return f"{sys.executable} -m tether.cli"


def _agent_key(
    ctx: typer.Context, project: str, agent: str, rotate: bool, grace_seconds: int, dry: bool
) -> str | None:
    """The agent's key: the one this machine already holds, a new agent's, or a rotated one."""
    key_file = _key_file(agent)
    admin = client(ctx)
    existing = admin.call("GET", "/agents", params={"project": project})
    known = any(a.get("name") == agent for a in existing)
    if known and key_file.exists() and not rotate:
        return key_file.read_text().strip()
    if dry:
        return None
    if known:
        if not rotate:
            raise CliError(
                f"agent {agent} exists and this machine holds no key for it ({key_file}); "
                "pass --rotate to issue a new one (with --grace 10m its other keys keep "
                "working that long; without, they stop now)"
            )
        issued = admin.call(
            "POST", f"/agents/{agent}/keys/rotate", {"grace_seconds": grace_seconds}
        )
    else:
        issued = admin.call("POST", "/agents", {"name": agent, "project": project})
    key = str(issued["key"])
    _write_private(key_file, key + "\n")
    return key


def _show(path: Path, before: str, after: str, key: str | None) -> None:
    diff = settings_diff(str(path), before, after, key)
    console.print(escape(diff) if diff else f"{path}: unchanged", highlight=False, soft_wrap=True)


@app.command("claude-code")
@reports_errors
def claude_code(
    ctx: typer.Context,
    project: str | None = typer.Option(None, "--project", "-p", help="The agent's project."),
    agent: str | None = typer.Option(None, "--agent", "-a", help="The agent (created if new)."),
    directory: Path | None = DirOption,
    user: bool = typer.Option(False, "--user", help="Connect every Claude Code of this user."),
    managed: bool = typer.Option(
        False, "--managed", help="Print managed settings for a fleet; writes nothing."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the diff; change nothing."),
    rotate: bool = typer.Option(
        False, "--rotate", help="Issue the existing agent a new key for this machine."
    ),
    grace: str = typer.Option(
        "0",
        "--grace",
        help="With --rotate: how long its other keys keep working, e.g. 10m.",
    ),
    check: bool = typer.Option(False, "--check", help="Only verify the round trip."),
) -> None:
    """Write Claude Code settings (base URL, key helper, hooks, MCP) that send it through
    tether, keeping every setting tether does not own."""
    if sum((directory is not None, user, managed)) > 1:
        raise CliError("give one of --dir, --user and --managed")
    url = client(ctx).url
    if managed:
        connection = TetherConnection(url, None, None, "tether")  # keys from each machine
        console.print(escape(render(merge_settings({}, connection))), highlight=False)
        errors.print(
            "each machine sets TETHER_KEY to its agent's key; the settings hold no key",
            highlight=False,
        )
        return
    place = _place(directory, user)
    if check:
        raise typer.Exit(_check(place))
    if not project or not agent:
        raise CliError("give the agent's project and name: -p PROJECT --agent NAME")
    try:
        grace_seconds = parse_duration(grace)
    except ValueError as exc:
        raise CliError(f"--grace: {exc}") from None
    key = _agent_key(ctx, project, agent, rotate, grace_seconds, dry_run)
    connection = TetherConnection(url, str(_key_file(agent)), key or "tth_…", _tether_command())
    before = place.settings.read_text() if place.settings.exists() else ""
    after = render(merge_settings(_read_json(place.settings), connection))
    _show(place.settings, before, after, key)
    mcp_before = mcp_after = ""
    if place.mcp is not None:
        mcp_before = place.mcp.read_text() if place.mcp.exists() else ""
        mcp_after = render(merge_mcp_servers(_read_json(place.mcp), connection))
        _show(place.mcp, mcp_before, mcp_after, key)
    if dry_run:
        if key is None:
            errors.print(f"would create agent {agent} in {project}", highlight=False)
        return
    _write_private(place.settings, after)
    if place.mcp is not None and mcp_after != mcp_before:
        place.mcp.write_text(mcp_after)
    where = "" if user else f" --dir {place.settings.parent.parent}"
    errors.print(
        f"connected: agent {agent}; verify with `tether connect claude-code --check{where}`",
        highlight=False,
    )


def _env(settings: dict[str, Any]) -> dict[str, Any]:
    env = settings.get("env")
    return env if isinstance(env, dict) else {}


def _settings_key(settings: dict[str, Any]) -> str | None:
    env = _env(settings)
    key = env.get("TETHER_KEY") or os.environ.get("TETHER_KEY")
    if key:
        return str(key)
    helper = str(settings.get("apiKeyHelper", ""))
    if helper.startswith("cat "):
        path = Path(helper[4:].strip().strip("'\""))
        if path.exists():
            return path.read_text().strip()
    return None


def _check(place: SettingsPlace) -> int:
    """Each link of the round trip, printed; 0 when all hold."""
    settings = _read_json(place.settings)
    env = _env(settings)
    url = str(env.get("TETHER_URL") or env.get("ANTHROPIC_BASE_URL") or "").rstrip("/")
    key = _settings_key(settings)
    results: list[tuple[str, bool, str]] = []
    if not url or not key:
        results.append(("settings", False, f"{place.settings} has no tether URL or key"))
        return _report(results)
    results.append(("settings", True, str(place.settings)))
    session = str(uuid.uuid4())
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(timeout=CHECK_TIMEOUT_SECONDS) as http:
        results.append(_probe_health(http, url))
        results.append(_probe_hook(http, url, headers, session))
        results.append(_probe_model(http, url, key, session))
    return _report(results)


def _probe_health(http: httpx.Client, url: str) -> tuple[str, bool, str]:
    try:
        answer = http.get(f"{url}/healthz")
    except httpx.HTTPError as exc:
        return ("tether reachable", False, f"{url}: {exc}")
    return ("tether reachable", answer.status_code == 200, f"{url}/healthz {answer.status_code}")


def _probe_hook(
    http: httpx.Client, url: str, headers: dict[str, str], session: str
) -> tuple[str, bool, str]:
    body = {
        "session_id": session,
        "hook_event_name": "PreToolUse",
        "tool_name": "Read",
        "tool_input": {"file_path": str(Path.cwd())},
        "tool_use_id": f"toolu_check_{session[:8]}",
        "cwd": str(Path.cwd()),
        "transcript_path": "",
        "permission_mode": "default",
    }
    try:
        answer = http.post(f"{url}{HOOK_PATH}", json=body, headers=headers)
        output = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        return ("hook decision", False, f"{url}{HOOK_PATH}: {exc}")
    if "error" in output:
        return ("hook decision", False, str(output["error"].get("message", output["error"])))
    decision = output.get("hookSpecificOutput", {}).get("permissionDecision", "?")
    return ("hook decision", True, f"recorded in session {session} ({decision})")


def _probe_model(http: httpx.Client, url: str, key: str, session: str) -> tuple[str, bool, str]:
    body = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "ping"}]}
    headers = {
        "x-api-key": key,
        "anthropic-version": "2023-06-01",
        "x-claude-code-session-id": session,
    }
    try:
        answer = http.post(f"{url}/v1/messages/count_tokens", json=body, headers=headers)
    except httpx.HTTPError as exc:
        return ("model call", False, str(exc))
    if answer.status_code != 200:
        return ("model call", False, f"{answer.status_code}: {answer.text[:300]}")
    return ("model call", True, "count_tokens answered through tether, recorded")


def _report(results: list[tuple[str, bool, str]]) -> int:
    for name, ok, detail in results:
        mark = "[green]ok[/green]  " if ok else "[red]FAIL[/red]"
        console.print(f"{mark} {name}: {escape(detail)}", highlight=False)
    return 0 if all(ok for _, ok, _ in results) else 1
