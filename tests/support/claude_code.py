"""The real Claude Code CLI (the ``claude`` binary bundled in the claude-agent-sdk wheel),
run headless against a tether, with or without tether's HTTP hooks."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import claude_agent_sdk

from tests.support.server import RunningTether

CLAUDE = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
HOOK_EVENTS = ("PreToolUse", "PostToolUse", "PostToolUseFailure", "Stop")


def hook_settings(tether: RunningTether, events: tuple[str, ...] = HOOK_EVENTS) -> dict[str, Any]:
    """The settings block the README gives: every event to tether, blocking when tether
    cannot be reached."""

    def entry(event: str) -> dict[str, Any]:
        hook: dict[str, Any] = {
            "type": "http",
            "url": f"{tether.url}/hooks/claude-code",
            "timeout": 10,
            "headers": {"Authorization": "Bearer $TETHER_KEY"},
            "allowedEnvVars": ["TETHER_KEY"],
        }
        if event == "PreToolUse":
            hook["onFailure"] = "block"
        return {"matcher": "*", "hooks": [hook]} if "Tool" in event else {"hooks": [hook]}

    return {"hooks": {event: [entry(event)] for event in events}}


@dataclass
class ClaudeRun:
    returncode: int
    output: dict[str, Any]
    stderr: str
    seconds: float
    session_id: str

    @property
    def result(self) -> str:
        return str(self.output.get("result", ""))


@dataclass
class ClaudeCode:
    """Runs ``claude -p`` in ``workdir`` as an agent holding ``key``."""

    tether: RunningTether
    key: str
    workdir: Path
    settings: dict[str, Any] | None = None
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    """More command-line arguments (``--mcp-config FILE``)."""

    def _environment(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))}
        home = self.workdir.parent / f"{self.workdir.name}-home"
        home.mkdir(exist_ok=True)
        return (
            base
            | {
                "HOME": str(home),
                "ANTHROPIC_BASE_URL": self.tether.url,
                "ANTHROPIC_API_KEY": self.key,
                "TETHER_KEY": self.key,
                "IS_SANDBOX": "1",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_AUTOUPDATER": "1",
            }
            | self.env
        )

    def start(
        self, prompt: str = "fix the build", session_id: str | None = None, max_turns: int = 100
    ) -> tuple[subprocess.Popen[str], str]:
        session_id = session_id or str(uuid.uuid4())
        args = [
            str(CLAUDE),
            "-p",
            prompt,
            "--permission-mode",
            "bypassPermissions",
            "--output-format",
            "json",
            "--session-id",
            session_id,
            "--max-turns",
            str(max_turns),
        ]
        if self.settings is not None:
            settings_file = self.workdir.parent / f"{self.workdir.name}-settings.json"
            settings_file.write_text(json.dumps(self.settings))
            args += ["--settings", str(settings_file)]
        args += self.args
        process = subprocess.Popen(
            args,
            cwd=self.workdir,
            env=self._environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return process, session_id

    def run(self, prompt: str = "fix the build", timeout: float = 180, **kwargs: Any) -> ClaudeRun:
        started = time.monotonic()
        process, session_id = self.start(prompt, **kwargs)
        return self.finish(process, session_id, started, timeout)

    @staticmethod
    def finish(
        process: subprocess.Popen[str], session_id: str, started: float, timeout: float = 180
    ) -> ClaudeRun:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            raise AssertionError(
                f"claude did not finish in {timeout} s: {stderr[-2000:]}"
            ) from None
        try:
            output = json.loads(stdout)
        except json.JSONDecodeError:
            raise AssertionError(
                f"claude printed no JSON result: {stdout[-2000:]} {stderr[-2000:]}"
            ) from None
        return ClaudeRun(process.returncode, output, stderr, time.monotonic() - started, session_id)
