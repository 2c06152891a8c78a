"""``/v1/authorize`` reads a large body off the event loop (the hook door's lane, shared):
other requests are answered while it is read, and it is read as a small body is."""

from __future__ import annotations

import socket

import httpx
import orjson

from tests.support.raw_http import healthz_while_answered, read_answer
from tests.support.server import RunningTether


def _answer(conn: socket.socket) -> tuple[int, dict[str, object]]:
    head, _, content = read_answer(conn).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), orjson.loads(content)


def _ask(resource: str, **extra: object) -> dict[str, object]:
    return {"action": "s3:GetObject", "resource": resource, "session_id": "s-1", **extra}


def test_healthz_answers_while_large_authorize_bodies_are_read(tether: RunningTether) -> None:
    tether.create_project("p")
    key = tether.create_agent("a", "p")
    items = [{"k": n % 10} for n in range(120_000)]
    body = orjson.dumps(_ask("arn:aws:s3:::data/x", attributes={"items": items}))
    assert 900_000 < len(body) < tether.settings.max_body_bytes
    answered_in_flight, heavy = healthz_while_answered(tether.url, "/v1/authorize", key, body)
    for status, answer in (_answer(conn) for conn in heavy):
        assert (status, answer["decision"]) == (200, "allow"), answer
    assert answered_in_flight >= 5, f"/healthz answered {answered_in_flight} times meanwhile"


def test_a_large_body_is_read_as_a_small_one_is(tether: RunningTether) -> None:
    tether.create_project("p")
    key = tether.create_agent("a", "p")
    pad = {"pad": "x" * 4_000}
    with httpx.Client(
        base_url=tether.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as client:
        for extra in ({}, {"attributes": pad}):
            allowed = client.post("/v1/authorize", json=_ask("arn:aws:s3:::data/x", **extra))
            assert allowed.status_code == 200 and allowed.json()["decision"] == "allow"
        small = client.post("/v1/authorize", json={**_ask("r"), "colour": "red"})
        large = client.post("/v1/authorize", json={**_ask("r", attributes=pad), "colour": "red"})
        assert small.status_code == large.status_code == 400
        assert small.json() == large.json()
        assert large.json()["error"]["code"] == "invalid_request", large.json()
        assert "colour" in large.json()["error"]["message"]
        broken = client.post("/v1/authorize", content=b'{"action": "s3:GetObject", ' + b" " * 2_000)
        assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_json"
