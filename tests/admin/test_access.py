"""Who may use the admin API: admin tokens only, viewers read-only, every call audited."""

from __future__ import annotations

import httpx

from tests.support.server import RunningTether


def test_no_token_is_401_with_how_to_send_it(tether: RunningTether) -> None:
    response = httpx.get(f"{tether.url}/admin/v1/projects")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_admin_token"
    assert "Bearer" in response.json()["error"]["message"]


def test_wrong_token_is_401(tether: RunningTether) -> None:
    response = tether.call("GET", "/projects", headers={"Authorization": "Bearer tta_wrong"})
    assert response.status_code == 401


def test_agent_key_on_admin_api_is_403(tether: RunningTether) -> None:
    tether.create_project("p")
    key = tether.create_agent("a", "p")
    with tether.admin(token=key) as client:
        for method, path in [("GET", "/projects"), ("POST", "/agents/a/release")]:
            response = client.request(method, path)
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "agent_key_on_admin_api"


def test_viewer_reads_but_cannot_write(tether_any: RunningTether) -> None:
    tether_any.create_project("p")
    created = tether_any.call("POST", "/tokens", json={"name": "dashboard", "role": "viewer"})
    assert created.status_code == 201
    viewer = created.json()["secret"]
    with tether_any.admin(token=viewer) as client:
        assert client.get("/projects").status_code == 200
        assert client.get("/agents").status_code == 200
        writes = [
            client.post("/projects", json={"name": "q"}),
            client.post("/agents", json={"name": "x", "project": "p"}),
            client.post("/tokens", json={"name": "escalate", "role": "admin"}),
            client.put("/projects/p/credentials/anthropic", json={"secret": "sk-ant-xxxxxxxx"}),
        ]
    for response in writes:
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "read_only_token"
    names = [p["name"] for p in tether_any.call("GET", "/projects").json()]
    assert names == ["p"]


def test_revoked_admin_token_stops_working(tether: RunningTether) -> None:
    secret = tether.call("POST", "/tokens", json={"name": "ops", "role": "admin"}).json()["secret"]
    with tether.admin(token=secret) as client:
        assert client.get("/projects").status_code == 200
    assert tether.call("DELETE", "/tokens/ops").status_code == 204
    with tether.admin(token=secret) as client:
        assert client.get("/projects").status_code == 401


def test_every_admin_call_is_audited_with_who_made_it(tether: RunningTether) -> None:
    tether.create_project("p")
    tether.call("GET", "/projects")
    tether.call("POST", "/projects", json={"name": "p"})
    httpx.get(f"{tether.url}/admin/v1/agents", headers={"Authorization": "Bearer tta_nope"})

    events = tether.call("GET", "/audit", params={"action": "admin:"}).json()
    seen = [(e["actor"], e["action"], e["result"], e["code"]) for e in events]
    assert ("admin:bootstrap", "admin:projects.create", "ok", None) in seen
    assert ("admin:bootstrap", "admin:projects.list", "ok", None) in seen
    assert ("admin:bootstrap", "admin:projects.create", "error", "conflict") in seen
    assert ("admin:unidentified", "admin:agents.list", "error", "invalid_admin_token") in seen


def test_openapi_document_describes_the_routes(tether: RunningTether) -> None:
    document = httpx.get(f"{tether.url}/admin/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert "post" in document["paths"]["/admin/v1/agents"]
    rotate = document["paths"]["/admin/v1/agents/{agent}/keys/rotate"]["post"]
    assert rotate["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "RotateKey"
    )
    assert "RotateKey" in document["components"]["schemas"]


def test_requests_without_a_valid_token_are_recorded_once_a_minute_per_address(
    tether: RunningTether,
) -> None:
    """Anyone can send them, and the audit chain is never pruned: each was a chained
    event, so a loop of bad requests grew the trail at its own rate."""
    for token in ["tta_nope"] * 20 + [None] * 10:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        answer = httpx.get(f"{tether.url}/admin/v1/agents", headers=headers)
        assert answer.status_code == 401
    events = tether.call("GET", "/audit", params={"action": "admin:agents.list"}).json()
    refused = [e for e in events if e["code"] == "invalid_admin_token"]
    assert len(refused) == 1, len(refused)
    assert refused[0]["attributes"]["refused"] == 1
