"""Slack approval messages carry Approve / Deny buttons (decided at /slack/interactions),
the CLI commands, and a link to the dashboard's approval page when tether knows the address
people reach it at (TETHER_PUBLIC_URL); generic webhooks get that link as approval_url."""

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


def _announced(
    tether: RunningTether, receiver: Receiver, kind: str = "slack"
) -> tuple[str, dict[str, Any]]:
    tether.create_project("p")
    key = tether.create_agent("janitor", "p")
    hook: dict[str, str] = {"kind": kind, "url": receiver.url}
    if kind == "generic":
        hook["secret"] = "a-generic-hook-secret-of-some-length"
    assert tether.call("POST", "/projects/p/webhooks", json=hook).status_code == 201
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


def _buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        b for block in message["blocks"] if block["type"] == "actions" for b in block["elements"]
    ]


def test_approval_message_links_to_the_approval_page(tmp_path: Path, receiver: Receiver) -> None:
    tether = start_tether(
        tmp_path / "data", sqlite_url(str(tmp_path)), public_url="https://tether.example"
    )
    try:
        approval_id, message = _announced(tether, receiver)
    finally:
        tether.stop()
    page = f"https://tether.example/ui/approvals/{approval_id}"
    shown = f"{approval_id}:1"  # a deletion under /srv/dev/: a group, one action so far
    assert [(b["text"]["text"], b["action_id"], b["value"]) for b in _buttons(message)] == [
        ("Approve", "tether_approval_approve", shown),
        ("Deny", "tether_approval_deny", shown),
    ]
    assert all("url" not in b for b in _buttons(message)), "a click decides; it opens nothing"
    assert page in message["text"]
    assert f"tether approvals approve {approval_id}" in json.dumps(message)


def test_without_a_public_url_the_buttons_and_commands_are_given(
    tmp_path: Path, receiver: Receiver
) -> None:
    tether = start_tether(tmp_path / "data", sqlite_url(str(tmp_path)))
    try:
        approval_id, message = _announced(tether, receiver)
    finally:
        tether.stop()
    assert [b["value"] for b in _buttons(message)] == [f"{approval_id}:1"] * 2
    assert "/ui/approvals" not in json.dumps(message)
    assert f"tether approvals deny {approval_id}" in json.dumps(message)


@pytest.mark.parametrize("public_url", ["https://tether.example", None])
def test_a_generic_webhook_gets_the_approval_page(
    tmp_path: Path, receiver: Receiver, public_url: str | None
) -> None:
    tether = start_tether(tmp_path / "data", sqlite_url(str(tmp_path)), public_url=public_url)
    try:
        approval_id, delivered = _announced(tether, receiver, kind="generic")
    finally:
        tether.stop()
    assert delivered["event"] == "approval.requested" and delivered["approval_id"] == approval_id
    if public_url:
        assert delivered["approval_url"] == f"{public_url}/ui/approvals/{approval_id}"
    else:
        assert "approval_url" not in delivered


def test_an_agents_text_is_shown_as_text_in_slack(tmp_path: Path, receiver: Receiver) -> None:
    """A resource is the agent's to choose: raw in mrkdwn, ``<https://…|label>`` was a
    link in tether's approval message and ``<!channel>`` pinged the whole channel."""
    tether = start_tether(tmp_path / "data", sqlite_url(str(tmp_path)))
    sly = "/srv/dev/x` <https://evil.example/ui/login|Approve in the dashboard> <!channel> `y"
    try:
        tether.create_project("p")
        key = tether.create_agent("janitor", "p")
        hook = {"kind": "slack", "url": receiver.url}
        assert tether.call("POST", "/projects/p/webhooks", json=hook).status_code == 201
        asked = httpx.post(
            f"{tether.url}/v1/authorize",
            headers={"Authorization": f"Bearer {key}"},
            json={"session_id": "s1", "action": "file:Delete", "resource": sly},
        )
        assert asked.status_code == 202, asked.text
        deadline = time.monotonic() + 10
        while not receiver.deliveries:
            assert time.monotonic() < deadline, "no announcement"
            time.sleep(0.05)
    finally:
        tether.stop()
    message = json.loads(receiver.deliveries[0].body)
    shown = json.dumps(message)
    assert "<https://evil" not in shown and "<!channel>" not in shown
    assert "&lt;https://evil.example/ui/login|Approve in the dashboard&gt;" in message["text"]
    assert "&lt;!channel&gt;" in message["text"]
