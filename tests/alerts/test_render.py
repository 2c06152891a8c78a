"""Slack approval messages link to the dashboard's approval page when tether knows the
address people reach it at (TETHER_PUBLIC_URL), and only the CLI commands when not."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.databases import sqlite_url
from tests.support.receiver import Receiver
from tests.support.server import RunningTether, start_tether


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def _announced(tether: RunningTether, receiver: Receiver) -> tuple[str, dict[str, Any]]:
    tether.create_project("p")
    key = tether.create_agent("janitor", "p")
    tether.call("POST", "/projects/p/webhooks", json={"kind": "slack", "url": receiver.url})
    asked = httpx.post(
        f"{tether.url}/v1/authorize",
        headers={"Authorization": f"Bearer {key}"},
        json={"session_id": "s1", "action": "file:Delete", "resource": "/srv/dev/cache"},
    )
    assert asked.status_code == 202, asked.text
    deadline = time.monotonic() + 10
    while not receiver.deliveries:
        assert time.monotonic() < deadline, "no announcement"
        time.sleep(0.05)
    message: dict[str, Any] = json.loads(receiver.deliveries[0].body)
    return asked.json()["approval_id"], message


def test_approval_message_links_to_the_approval_page(tmp_path: Path, receiver: Receiver) -> None:
    tether = start_tether(
        tmp_path / "data", sqlite_url(str(tmp_path)), public_url="https://tether.example"
    )
    try:
        approval_id, message = _announced(tether, receiver)
    finally:
        tether.stop()
    page = f"https://tether.example/ui/approvals/{approval_id}"
    buttons = [
        b for block in message["blocks"] if block["type"] == "actions" for b in block["elements"]
    ]
    assert [(b["text"]["text"], b["url"]) for b in buttons] == [("Approve", page), ("Deny", page)]
    assert page in message["text"]
    assert f"tether approvals approve {approval_id}" in json.dumps(message)


def test_without_a_public_url_only_the_commands_are_given(
    tmp_path: Path, receiver: Receiver
) -> None:
    tether = start_tether(tmp_path / "data", sqlite_url(str(tmp_path)))
    try:
        approval_id, message = _announced(tether, receiver)
    finally:
        tether.stop()
    assert all(block["type"] == "section" for block in message["blocks"])
    assert "/ui/approvals" not in json.dumps(message)
    assert f"tether approvals deny {approval_id}" in json.dumps(message)
