"""POST /v1/authorize, driven with httpx as an agent would."""

from __future__ import annotations

import httpx

from tests.support.server import RunningTether


def authorize(
    tether: RunningTether, key: str | None, body: dict | bytes, header: str = "bearer"
) -> httpx.Response:
    headers = {}
    if key is not None:
        headers = {"Authorization": f"Bearer {key}"} if header == "bearer" else {"x-api-key": key}
    if isinstance(body, bytes):
        return httpx.post(f"{tether.url}/v1/authorize", content=body, headers=headers)
    return httpx.post(f"{tether.url}/v1/authorize", json=body, headers=headers)


BODY = {"session_id": "sess-1", "action": "s3:GetObject", "resource": "arn:aws:s3:::dev-a/k"}


def test_known_agent_is_allowed_and_the_decision_is_audited(tether_any: RunningTether) -> None:
    tether_any.create_project("payments")
    key = tether_any.create_agent("claude-deploy-01", "payments")

    response = authorize(tether_any, key, BODY)

    assert response.status_code == 200, response.text
    decision = response.json()
    assert decision["decision"] == "allow"
    assert decision["agent"] == "claude-deploy-01"
    assert decision["session_id"] == "sess-1"
    events = tether_any.call("GET", "/audit", params={"session": "sess-1"}).json()
    assert [e["id"] for e in events] == [decision["event_id"]]
    event = events[0]
    assert event["agent"] == "claude-deploy-01"
    assert event["action"] == "s3:GetObject"
    assert event["resource"] == "arn:aws:s3:::dev-a/k"
    assert event["result"] == "allow"


def test_x_api_key_header_works_like_bearer(tether: RunningTether) -> None:
    tether.create_project("p")
    key = tether.create_agent("a", "p")
    assert authorize(tether, key, BODY, header="x-api-key").json()["decision"] == "allow"


def test_session_is_created_when_absent(tether: RunningTether) -> None:
    tether.create_project("p")
    key = tether.create_agent("a", "p")
    first = authorize(tether, key, {"action": "x:Y", "resource": "r"}).json()
    second = authorize(tether, key, {"action": "x:Y", "resource": "r"}).json()
    assert first["session_id"] and second["session_id"]
    assert first["session_id"] != second["session_id"]


def test_unknown_key_is_denied_401_and_audited_as_a_sampled_refusal(tether: RunningTether) -> None:
    response = authorize(tether, "tth_not-a-real-key", BODY)
    assert response.status_code == 401
    body = response.json()
    assert body["decision"] == "deny"
    assert body["error"]["code"] == "invalid_key"
    events = tether.call("GET", "/audit", params={"action": "auth:refused"}).json()
    assert [(e["result"], e["code"]) for e in events] == [("deny", "invalid_key")]
    assert events[0]["attributes"]["refused"] == 1


def test_missing_key_is_denied_with_how_to_send_it(tether: RunningTether) -> None:
    response = authorize(tether, None, BODY)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_credentials"
    assert "Authorization: Bearer" in response.json()["error"]["message"]


def test_an_agent_cannot_touch_or_probe_another_agents_session(tether: RunningTether) -> None:
    tether.create_project("p")
    tether.create_project("q")
    first = tether.create_agent("a", "p")
    second = tether.create_agent("b", "q")
    assert authorize(tether, first, BODY).status_code == 200
    response = authorize(tether, second, BODY)
    assert response.status_code == 200, "b gets a session of its own, not a refusal"
    assert response.json()["session_id"] == BODY["session_id"], "nothing tells b it was taken"
    killed = tether.call("POST", f"/sessions/{BODY['session_id']}/kill", json={"reason": "a only"})
    assert killed.status_code == 200
    assert authorize(tether, first, BODY).status_code == 423
    assert authorize(tether, second, BODY).status_code == 200, "b's session is not a's"
    trail = tether.call("GET", "/audit", params={"session": BODY["session_id"]}).json()
    assert {e["agent"] for e in trail if e["source"] == "authorize"} == {"a"}


def test_quarantined_agent_is_denied_and_others_are_not(tether_any: RunningTether) -> None:
    tether_any.create_project("p")
    bad = tether_any.create_agent("bad", "p")
    good = tether_any.create_agent("good", "p")

    assert tether_any.call("POST", "/agents/bad/quarantine").json()["state"] == "quarantined"
    denied = authorize(tether_any, bad, BODY)
    allowed = authorize(tether_any, good, {**BODY, "session_id": "other"})

    assert denied.status_code == 423
    assert denied.json()["error"]["code"] == "agent_quarantined"
    assert allowed.status_code == 200
    assert tether_any.call("POST", "/agents/bad/release").json()["state"] == "active"
    assert authorize(tether_any, bad, BODY).status_code == 200


def test_revoked_agent_key_stops_working_on_the_next_request(tether_any: RunningTether) -> None:
    tether_any.create_project("p")
    key = tether_any.create_agent("a", "p")
    assert authorize(tether_any, key, BODY).status_code == 200
    assert tether_any.call("POST", "/agents/a/revoke").json()["state"] == "revoked"
    response = authorize(tether_any, key, BODY)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "revoked_key"
    again = tether_any.call("POST", "/agents/a/release")
    assert again.status_code == 409


class TestBadInput:
    def setup_key(self, tether: RunningTether) -> str:
        tether.create_project("p")
        return tether.create_agent("a", "p")

    def test_malformed_json(self, tether: RunningTether) -> None:
        key = self.setup_key(tether)
        response = authorize(tether, key, b'{"action": ')
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_json"
        assert "not valid JSON" in response.json()["error"]["message"]

    def test_wrong_types_name_the_field(self, tether: RunningTether) -> None:
        key = self.setup_key(tether)
        response = authorize(tether, key, {"action": 5, "resource": "r"})
        assert response.status_code == 400
        assert "action" in response.json()["error"]["message"]

    def test_missing_field_is_named(self, tether: RunningTether) -> None:
        key = self.setup_key(tether)
        response = authorize(tether, key, {"action": "x:Y"})
        assert response.status_code == 400
        assert "resource" in response.json()["error"]["message"]

    def test_unknown_field_is_named(self, tether: RunningTether) -> None:
        key = self.setup_key(tether)
        response = authorize(tether, key, {**BODY, "resorce": "typo"})
        assert response.status_code == 400
        assert "resorce" in response.json()["error"]["message"]

    def test_body_not_an_object(self, tether: RunningTether) -> None:
        key = self.setup_key(tether)
        response = authorize(tether, key, b"[1, 2]")
        assert response.status_code == 400

    def test_oversized_body_is_413(self, tether: RunningTether) -> None:
        key = self.setup_key(tether)
        huge = {**BODY, "attributes": {"blob": "x" * (tether.settings.max_body_bytes + 10)}}
        response = authorize(tether, key, huge)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert str(tether.settings.max_body_bytes) in response.json()["error"]["message"]

    def test_oversized_chunked_body_is_413(self, tether: RunningTether) -> None:
        key = self.setup_key(tether)

        def chunks():
            for _ in range(40):
                yield b"x" * 65536

        response = httpx.post(
            f"{tether.url}/v1/authorize",
            content=chunks(),
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 413

    def test_unknown_route_is_a_json_404(self, tether: RunningTether) -> None:
        response = httpx.get(f"{tether.url}/v1/nothing-here")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"

    def test_wrong_method_is_a_json_405(self, tether: RunningTether) -> None:
        response = httpx.get(f"{tether.url}/v1/authorize")
        assert response.status_code == 405
        assert response.json()["error"]["code"] == "method_not_allowed"
