"""Projects and agents through the admin API: names, duplicates, bad input."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest

from tests.support.server import RunningTether


def test_create_and_list(tether_any: RunningTether) -> None:
    tether_any.create_project("payments")
    tether_any.create_agent("claude-deploy-01", "payments")
    tether_any.create_agent("claude-deploy-02", "payments")
    agents = tether_any.call("GET", "/agents", params={"project": "payments"}).json()
    assert [(a["name"], a["project"], a["state"]) for a in agents] == [
        ("claude-deploy-01", "payments", "active"),
        ("claude-deploy-02", "payments", "active"),
    ]


def test_key_is_shown_once(tether_any: RunningTether) -> None:
    tether_any.create_project("p")
    created = tether_any.call("POST", "/agents", json={"name": "a", "project": "p"}).json()
    key = created["key"]
    assert key.startswith("tth_") and len(key) >= 40
    for path in ["/agents", "/agents/a", "/agents/a/keys", "/audit"]:
        assert key not in tether_any.call("GET", path).text
    listed = tether_any.call("GET", "/agents/a/keys").json()
    assert listed[0]["prefix"] == key[:10]


def _keys_once_flushed(tether: RunningTether, agent: str) -> list[dict]:
    """The key listing once some key shows a last use (flushed about once a second)."""
    deadline = time.monotonic() + 5
    while True:
        keys: list[dict] = tether.call("GET", f"/agents/{agent}/keys").json()
        if any(k["last_used_at"] for k in keys) or time.monotonic() > deadline:
            return keys
        time.sleep(0.1)


def test_keys_list_when_each_was_last_used(tether_any: RunningTether) -> None:
    tether_any.create_project("p")
    old_key = tether_any.create_agent("a", "p")
    assert tether_any.call("GET", "/agents/a/keys").json()[0]["last_used_at"] is None
    rotated = tether_any.call("POST", "/agents/a/keys/rotate", json={"grace_seconds": 60})
    new_key = rotated.json()["key"]

    before = datetime.now().astimezone()
    answer = httpx.post(
        f"{tether_any.url}/v1/authorize",
        json={"action": "s3:GetObject", "resource": "arn:aws:s3:::b/k"},
        headers={"Authorization": f"Bearer {new_key}"},
    )
    assert answer.status_code == 200, answer.text

    keys = {k["id"]: k for k in _keys_once_flushed(tether_any, "a")}
    used = keys[rotated.json()["key_id"]]["last_used_at"]
    assert used is not None
    assert datetime.fromisoformat(used) >= before.replace(microsecond=0)
    assert [k["last_used_at"] for k in keys.values() if k["prefix"] == old_key[:10]] == [None]
    listing = tether_any.call("GET", "/agents/a/keys").text
    assert new_key not in listing and old_key not in listing


@pytest.mark.parametrize(
    ("path", "body"),
    [("/projects", {"name": "dup"}), ("/agents", {"name": "dup-agent", "project": "dup"})],
)
def test_duplicate_names_are_409(tether_any: RunningTether, path: str, body: dict) -> None:
    tether_any.create_project("dup")
    tether_any.call("POST", "/agents", json={"name": "dup-agent", "project": "dup"})
    response = tether_any.call("POST", path, json=body)
    assert response.status_code == 409
    assert "already exists" in response.json()["error"]["message"]


def test_agent_in_unknown_project_is_404(tether: RunningTether) -> None:
    response = tether.call("POST", "/agents", json={"name": "a", "project": "ghost"})
    assert response.status_code == 404
    assert "ghost" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"name": "has space"}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 65}, "name"),
        ({}, "name"),
        ({"name": 7}, "name"),
        ({"name": "ok", "extra": 1}, "extra"),
    ],
)
def test_bad_project_bodies_name_the_field(
    tether: RunningTether, body: dict, mentions: str
) -> None:
    response = tether.call("POST", "/projects", json=body)
    assert response.status_code == 400
    assert mentions in response.json()["error"]["message"]


def test_malformed_json_on_admin_api(tether: RunningTether) -> None:
    response = tether.call("POST", "/projects", content=b"{nope")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_unknown_agent_is_404(tether: RunningTether) -> None:
    for method, path in [
        ("GET", "/agents/ghost"),
        ("POST", "/agents/ghost/quarantine"),
        ("POST", "/agents/ghost/keys/rotate"),
    ]:
        response = tether.call(method, path)
        assert response.status_code == 404, path
        assert "ghost" in response.json()["error"]["message"]


def test_negative_grace_is_rejected(tether: RunningTether) -> None:
    tether.create_project("p")
    tether.create_agent("a", "p")
    response = tether.call("POST", "/agents/a/keys/rotate", json={"grace_seconds": -5})
    assert response.status_code == 400
    assert "grace_seconds" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "url", ["http://[", "http://hooks.example:99999/x", "http://", "https://h\u00f4te.example/x"]
)
def test_a_url_tether_cannot_dial_is_a_400_naming_the_field(
    tether_any: RunningTether, url: str
) -> None:
    tether_any.create_project("p")
    added = tether_any.call("POST", "/projects/p/webhooks", json={"kind": "slack", "url": url})
    assert added.status_code == 400, added.text
    assert added.json()["error"]["code"] == "invalid_request"
    assert "url" in added.json()["error"]["message"]
    updated = tether_any.call("PATCH", "/projects/p", json={"upstream_base_url": url})
    assert updated.status_code == 400, updated.text
