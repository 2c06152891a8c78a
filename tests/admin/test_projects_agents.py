"""Projects and agents through the admin API: names, duplicates, bad input."""

from __future__ import annotations

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
