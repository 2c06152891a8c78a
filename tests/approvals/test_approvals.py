"""Deletion approvals through /v1/authorize and the admin API: approve, deny, expire,
one-time use, exact scope, long-poll, and the announcement on the project's webhooks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.databases import sqlite_url
from tests.support.receiver import Receiver
from tests.support.server import RunningTether, start_tether
from tether.runtime import BOOTSTRAP_TOKEN_NAME

BUCKET = "arn:aws:s3:::dev-scratch"
POLICY = (
    'permit(principal, action in Action::"s3:*", resource)'
    ' when { resource.arn like "arn:aws:s3:::dev-*" };'
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def decide(
    tether: RunningTether,
    key: str,
    action: str = "s3:DeleteBucket",
    resource: str = BUCKET,
    session: str = "s1",
    wait: float = 0,
) -> httpx.Response:
    body = {"session_id": session, "action": action, "resource": resource, "wait_seconds": wait}
    return httpx.post(
        f"{tether.url}/v1/authorize",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def wait_for(condition, seconds: float = 10) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def setup(tether: RunningTether) -> str:
    tether.create_project("p", policy=POLICY)
    return tether.create_agent("deployer", "p")


def test_deletion_round_trip_approve_then_used_once(
    tether_any: RunningTether, receiver: Receiver
) -> None:
    key = setup(tether_any)
    tether_any.call(
        "POST", "/projects/p/webhooks", json={"kind": "slack", "url": f"{receiver.url}/slack"}
    )

    pending = decide(tether_any, key)

    assert pending.status_code == 202, pending.text
    body = pending.json()
    assert body["decision"] == "pending"
    approval_id = body["approval_id"]
    assert approval_id.startswith("apr_") and approval_id in body["reason"]
    assert decide(tether_any, key).json()["approval_id"] == approval_id, "no duplicate request"
    listed = tether_any.call("GET", "/approvals", params={"state": "pending"}).json()
    assert [(a["id"], a["agent"], a["action"], a["resource"]) for a in listed] == [
        (approval_id, "deployer", "s3:DeleteBucket", BUCKET)
    ]
    wait_for(lambda: len(receiver.deliveries) == 1)
    announced = json.loads(receiver.deliveries[0].body)
    assert approval_id in announced["text"] and "s3:DeleteBucket" in announced["text"]

    approved = tether_any.call(
        "POST", f"/approvals/{approval_id}/approve", json={"reason": "scratch bucket"}
    )
    assert approved.status_code == 200 and approved.json()["state"] == "approved"
    assert approved.json()["decided_by"] == f"admin:{BOOTSTRAP_TOKEN_NAME}"

    allowed = decide(tether_any, key)
    assert allowed.status_code == 200, allowed.text
    assert approval_id in allowed.json()["reason"]
    again = decide(tether_any, key)
    assert again.status_code == 202, "an approval is used once"
    assert again.json()["approval_id"] != approval_id
    assert tether_any.call("GET", f"/approvals/{approval_id}").json()["state"] == "used"

    events = tether_any.call("GET", "/audit", params={"session": "s1"}).json()
    by_id = {e["id"]: e for e in events}
    assert by_id[allowed.json()["event_id"]]["attributes"]["approval_id"] == approval_id
    decided = [e for e in events if e["action"] == "approval:approved"]
    assert len(decided) == 1
    assert decided[0]["actor"] == f"admin:{BOOTSTRAP_TOKEN_NAME}"
    assert decided[0]["attributes"]["approval_id"] == approval_id


def test_denied_approval_denies_retries_with_the_reason(tether: RunningTether) -> None:
    key = setup(tether)
    approval_id = decide(tether, key).json()["approval_id"]

    denied = tether.call(
        "POST", f"/approvals/{approval_id}/deny", json={"reason": "that bucket holds the demo"}
    )

    assert denied.status_code == 200 and denied.json()["state"] == "denied"
    retry = decide(tether, key)
    assert retry.status_code == 403
    assert retry.json()["error"]["code"] == "approval_denied"
    assert "that bucket holds the demo" in retry.json()["reason"]
    late = tether.call("POST", f"/approvals/{approval_id}/approve", json={})
    assert late.status_code == 409 and "already denied" in late.json()["error"]["message"]
    assert tether.call("POST", f"/approvals/{approval_id}/deny", json={}).status_code == 400


def test_pending_approval_expires(tether: RunningTether) -> None:
    key = setup(tether)
    tether.call("PATCH", "/projects/p", json={"approval_ttl_seconds": 1})
    approval_id = decide(tether, key).json()["approval_id"]

    time.sleep(1.2)

    late = tether.call("POST", f"/approvals/{approval_id}/approve", json={})
    assert late.status_code == 409 and "expired" in late.json()["error"]["message"]
    expired = tether.call("GET", "/approvals", params={"state": "expired"}).json()
    assert [a["id"] for a in expired] == [approval_id]
    fresh = decide(tether, key)
    assert fresh.status_code == 202 and fresh.json()["approval_id"] != approval_id


def test_lapsed_approvals_are_marked_expired_and_audited(tmp_path) -> None:  # type: ignore[no-untyped-def]
    tether = start_tether(tmp_path / "data", sqlite_url(str(tmp_path)), approval_reap_seconds=0.2)
    try:
        key = setup(tether)
        tether.call("PATCH", "/projects/p", json={"approval_ttl_seconds": 1})
        approval_id = decide(tether, key).json()["approval_id"]

        def expired_event() -> list[dict]:  # type: ignore[type-arg]
            events = tether.call("GET", "/audit", params={"session": "s1"}).json()
            return [e for e in events if e["action"] == "approval:expired"]

        wait_for(lambda: bool(expired_event()), seconds=10)
        event = expired_event()[0]
        assert event["attributes"]["approval_id"] == approval_id
        assert event["agent"] == "deployer" and event["result"] == "expired"
        assert tether.call("GET", f"/approvals/{approval_id}").json()["state"] == "expired"
        time.sleep(0.5)
        assert len(expired_event()) == 1, "recorded once"
    finally:
        tether.stop()


def test_unused_approval_lapses(tether: RunningTether) -> None:
    key = setup(tether)
    approval_id = decide(tether, key).json()["approval_id"]
    tether.call("POST", f"/approvals/{approval_id}/approve", json={"ttl_seconds": 1})

    time.sleep(1.2)

    assert decide(tether, key).status_code == 202
    assert tether.call("GET", f"/approvals/{approval_id}").json()["state"] == "expired"


def test_approval_grants_exactly_that_action_resource_and_session(tether: RunningTether) -> None:
    key = setup(tether)
    approval_id = decide(tether, key).json()["approval_id"]
    tether.call("POST", f"/approvals/{approval_id}/approve", json={})

    assert decide(tether, key, resource="arn:aws:s3:::dev-other").status_code == 202
    assert decide(tether, key, action="s3:DeleteObject").status_code == 202
    assert decide(tether, key, session="s2").status_code == 202
    assert decide(tether, key).status_code == 200


def test_concurrent_retries_use_an_approval_once(tether_any: RunningTether) -> None:
    key = setup(tether_any)
    approval_id = decide(tether_any, key).json()["approval_id"]
    tether_any.call("POST", f"/approvals/{approval_id}/approve", json={})

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: decide(tether_any, key).status_code, range(8)))

    assert statuses.count(200) == 1, statuses
    assert statuses.count(202) == 7


def test_long_poll_answers_allow_once_approved(tether: RunningTether) -> None:
    key = setup(tether)
    approval_id = decide(tether, key).json()["approval_id"]
    answers: list[httpx.Response] = []
    waiting = threading.Thread(target=lambda: answers.append(decide(tether, key, wait=20)))
    started = time.monotonic()
    waiting.start()
    time.sleep(0.3)
    tether.call("POST", f"/approvals/{approval_id}/approve", json={})
    waiting.join(25)

    assert answers and answers[0].status_code == 200, answers
    assert time.monotonic() - started < 10
    assert approval_id in answers[0].json()["reason"]


def test_long_poll_is_bounded(tether: RunningTether) -> None:
    key = setup(tether)
    started = time.monotonic()
    answer = decide(tether, key, wait=1)
    assert answer.status_code == 202
    assert 0.9 < time.monotonic() - started < 5
    assert decide(tether, key, wait=61).status_code == 400


def test_projects_can_turn_deletion_approval_off(tether: RunningTether) -> None:
    key = setup(tether)
    changed = tether.call("PATCH", "/projects/p", json={"deletion_approval": False})
    assert changed.json()["deletion_approval"] is False
    assert decide(tether, key).status_code == 200
    assert decide(tether, key, resource="arn:aws:s3:::prod-x").status_code == 403


def test_ask_rule_needs_approval_for_other_actions(tether: RunningTether) -> None:
    tether.create_project(
        "p",
        policy='@ask("writes to shared buckets are reviewed")\n'
        'permit(principal, action == Action::"s3:PutObject", resource);',
    )
    key = tether.create_agent("a", "p")
    pending = decide(tether, key, action="s3:PutObject", resource="arn:aws:s3:::shared")
    assert pending.status_code == 202
    assert "writes to shared buckets are reviewed" in pending.json()["reason"]


def test_unknown_approval_is_404_and_bad_state_filter_is_400(tether: RunningTether) -> None:
    assert tether.call("POST", "/approvals/apr_nope/approve", json={}).status_code == 404
    assert tether.call("GET", "/approvals", params={"state": "maybe"}).status_code == 400


def test_a_burst_of_deletions_under_one_prefix_asks_once(
    tether_any: RunningTether, receiver: Receiver
) -> None:
    key = setup(tether_any)
    tether_any.call(
        "POST", "/projects/p/webhooks", json={"kind": "slack", "url": f"{receiver.url}/slack"}
    )
    objects = [f"{BUCKET}/tmp/{i:03}" for i in range(30)]
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda r: decide(tether_any, key, "s3:DeleteObject", r), objects))
    assert {a.status_code for a in answers} == {202}
    (group,) = tether_any.call("GET", "/approvals").json()
    assert {a.json()["approval_id"] for a in answers} == {group["id"]}, "one request"
    assert group["prefix"] == f"{BUCKET}/tmp/" and group["count"] == 30
    assert len(group["items"]) == 10 and set(group["items"]) <= set(objects)
    wait_for(lambda: len(receiver.deliveries) == 1)
    time.sleep(0.5)
    assert len(receiver.deliveries) == 1, "one message"
    assert f"{BUCKET}/tmp/" in json.loads(receiver.deliveries[0].body)["text"]

    approved = tether_any.call(
        "POST", f"/approvals/{group['id']}/approve", json={"max_uses": 5, "ttl_seconds": 120}
    )
    assert approved.status_code == 200 and approved.json()["max_uses"] == 5
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda r: decide(tether_any, key, "s3:DeleteObject", r), objects))
    assert sorted(a.status_code for a in answers).count(200) == 5, "exactly the count granted"
    shown = tether_any.call("GET", f"/approvals/{group['id']}").json()
    assert shown["state"] == "used" and shown["uses"] == 5
    outside = decide(tether_any, key, "s3:DeleteObject", f"{BUCKET}/keep/x")
    assert outside.status_code == 202 and outside.json()["approval_id"] != group["id"]
