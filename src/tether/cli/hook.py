"""``tether hook session-start``: Claude Code's SessionStart takes only ``command`` hooks,
so this command carries the event to tether's ``/hooks/claude-code`` and prints its answer
(the task block as ``additionalContext``). When tether cannot be reached or refuses, it
fails closed: it answers ``continue: false`` with the reason, so the session does not go
on without its task."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import httpx
import typer

app = typer.Typer(help="Claude Code command hooks (SessionStart).", no_args_is_help=True)

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT_SECONDS = 10.0


def _stop(reason: str) -> None:
    print(json.dumps({"continue": False, "stopReason": f"tether: {reason}"}))
    print(f"tether: {reason}", file=sys.stderr)


def _key() -> str | None:
    for name in ("TETHER_KEY", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def _url() -> str:
    url = os.environ.get("TETHER_URL") or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_URL
    return url.rstrip("/")


def _answer(body: Any) -> dict[str, Any]:
    """Only what Claude Code reads from a hook's output."""
    if not isinstance(body, dict):
        return {}
    return {k: v for k, v in body.items() if k in ("continue", "stopReason", "hookSpecificOutput")}


@app.command("session-start")
def session_start() -> None:
    """Read the SessionStart hook JSON on stdin, ask tether, print the hook answer."""
    try:
        event = json.loads(sys.stdin.read() or "{}")
    except json.JSONDecodeError as exc:
        _stop(f"the hook input is not JSON ({exc.msg}); is this run as a Claude Code hook?")
        return
    key = _key()
    if key is None:
        _stop("no agent key: set TETHER_KEY (or ANTHROPIC_API_KEY) to the agent's tth_ key")
        return
    if not isinstance(event, dict):
        _stop("the hook input is not a JSON object")
        return
    event.setdefault("hook_event_name", "SessionStart")
    url = f"{_url()}/hooks/claude-code"
    try:
        response = httpx.post(
            url,
            json=event,
            headers={"Authorization": f"Bearer {key}"},
            timeout=TIMEOUT_SECONDS,
        )
    except httpx.HTTPError as exc:
        _stop(f"cannot reach tether at {url} ({type(exc).__name__}); the task cannot be loaded")
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        _stop(f"tether refused the session start: {error.get('message', response.reason_phrase)}")
        return
    print(json.dumps(_answer(body)))
