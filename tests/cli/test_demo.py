"""`tether demo` as a newcomer runs it: one command, a URL and a token, and within seconds
every control the README promises is on record — a loop stopped by the guards, a prod
deletion denied, a dev deletion waiting for a human, a session out of budget."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from tests.support.server import free_port

GUARD_CODES = {"retry_limit", "repeated_request", "repeated_tool_call"}


def test_the_demo_shows_every_control_within_seconds() -> None:
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "tether.cli", "demo", "--port", str(port), "--minutes", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert demo.stdout is not None
        lines: list[str] = []
        while not (lines and lines[-1].startswith("tta_")):
            line = demo.stdout.readline()
            assert line, f"the demo ended before printing a token: {lines}"
            lines.append(line.strip())
        assert any(f"http://127.0.0.1:{port}/ui/" in line for line in lines)
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}/admin/v1",
            headers={"Authorization": f"Bearer {lines[-1]}"},
            timeout=10,
        ) as admin:
            _every_control_shows(admin)
        page = httpx.get(f"http://127.0.0.1:{port}/ui/login", timeout=10)
        assert page.status_code == 200 and "token" in page.text.lower()
    finally:
        demo.terminate()
        demo.wait(30)
        if demo.stdout is not None:
            demo.stdout.close()


def _every_control_shows(admin: httpx.Client) -> None:
    wanted = {"policy_denied", "budget_exceeded", "approval_pending"}
    deadline = time.monotonic() + 20
    while True:
        events = admin.get("/audit", params={"order": "newest", "limit": "1000"}).json()
        codes = {event["code"] for event in events}
        if wanted <= codes and codes & GUARD_CODES:
            break
        assert time.monotonic() < deadline, f"missing {wanted - codes} or a guard stop"
        time.sleep(0.5)
    assert admin.get("/approvals", params={"state": "pending"}).json()
