"""Approve / Deny from Slack: the approval message carries the buttons, a click is a request
signed the way Slack signs it (v0 HMAC-SHA256 over ``v0:{ts}:{raw body}``, form-encoded
``payload=``), and tether decides through the same code as ``tether approvals``, for a
Slack user mapped to an operator of that project only, then replaces the message."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support.receiver import Receiver
from tests.support.server import RunningTether
from tether.runtime import BOOTSTRAP_TOKEN_NAME

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM, ALICE, MALLORY = "T0ACME01", "U0ALICE1", "U0MALLRY"
BUCKET = "arn:aws:s3:::dev-scratch"
POLICY = 'permit(principal, action, resource) when { resource.arn like "arn:aws:s3:::dev-*" };'


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """The fake Slack: the incoming webhook and every interaction's response_url."""
    running = Receiver().start()
    yield running
    running.stop()


def wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)


def posted(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    return [json.loads(d.body) for d in list(receiver.deliveries) if d.path == path]


def signed(body: str, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Slack's headers for ``body``: exactly how Slack signs a request."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def click_body(
    message: dict[str, Any], label: str, receiver: Receiver, user: str = ALICE, team: str = TEAM
) -> str:
    """The form body Slack posts when ``user`` clicks the button labelled ``label`` on the
    message tether sent (a ``block_actions`` payload, form-encoded as ``payload=``)."""
    block, button = next(
        (block, element)
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["text"]["text"] == label
    )
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "alice.ops", "name": "alice.ops", "team_id": team},
        "api_app_id": "A0TETHER",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": "1733299200.000100",
            "channel_id": "C0OPS",
            "is_ephemeral": False,
        },
        "trigger_id": "123.456.abc",
        "team": {"id": team, "domain": "acme"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": "C0OPS", "name": "ops"},
        "message": {"type": "message", "ts": "1733299200.000100", **message},
        "state": {"values": {}},
        "response_url": f"{receiver.url}/actions/{team}/1/{user}",
        "actions": [
            {
                "action_id": button["action_id"],
                "block_id": block.get("block_id", "b"),
                "text": button["text"],
                "value": button["value"],
                "style": button.get("style"),
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


def click(tether: RunningTether, body: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{tether.url}/slack/interactions", content=body, headers=headers)


class Asked:
    """A project whose agent asks to delete a bucket, the Slack message that announced it."""

    def __init__(self, tether: RunningTether, receiver: Receiver, project: str = "p") -> None:
        tether.create_project(project, policy=POLICY)
        self.key = tether.create_agent(f"deployer-{project}", project)
        added = tether.call(
            "POST", f"/projects/{project}/webhooks", json={"kind": "slack", "url": receiver.url}
        )
        assert added.status_code == 201, added.text
        self.tether, self.receiver = tether, receiver

    def ask(self, wait: float = 0) -> httpx.Response:
        return httpx.post(
            f"{self.tether.url}/v1/authorize",
            json={
                "session_id": "s1",
                "action": "s3:DeleteBucket",
                "resource": BUCKET,
                "wait_seconds": wait,
            },
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=60,
        )

    def message(self) -> dict[str, Any]:
        wait_for(lambda: bool(posted(self.receiver, "/")))
        return posted(self.receiver, "/")[-1]


def set_up_slack(tether: RunningTether, project: str = "p", user: str = ALICE) -> None:
    stored = tether.call("PUT", "/slack/signing-secret", json={"secret": SECRET})
    assert stored.status_code == 200, stored.text
    mapped = tether.call(
        "POST",
        f"/projects/{project}/slack-users",
        json={"team_id": TEAM, "user_id": user, "operator": BOOTSTRAP_TOKEN_NAME},
    )
    assert mapped.status_code == 201, mapped.text


def state(tether: RunningTether, approval_id: str) -> str:
    return str(tether.call("GET", f"/approvals/{approval_id}").json()["state"])


def test_approve_in_slack_unblocks_the_waiting_agent_and_replaces_the_message(
    tether_any: RunningTether, receiver: Receiver
) -> None:
    asked = Asked(tether_any, receiver)
    set_up_slack(tether_any)
    answers: list[httpx.Response] = []
    waiting = threading.Thread(target=lambda: answers.append(asked.ask(wait=30)))
    waiting.start()
    message = asked.message()
    buttons = [
        (e["text"]["text"], e["action_id"], e["value"], e.get("url"))
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    approval_id = buttons[0][2]
    assert buttons == [
        ("Approve", "tether_approval_approve", approval_id, None),
        ("Deny", "tether_approval_deny", approval_id, None),
    ]

    body = click_body(message, "Approve", receiver)
    answer = click(tether_any, body, signed(body))

    assert answer.status_code == 200, answer.text
    waiting.join(30)
    assert answers and answers[0].status_code == 200, answers and answers[0].text
    assert answers[0].json()["decision"] == "allow"
    record = tether_any.call("GET", f"/approvals/{approval_id}").json()
    assert record["state"] == "used"
    assert record["decided_by"] == f"admin:{BOOTSTRAP_TOKEN_NAME}"
    assert record["decision_reason"] == "approved in Slack by @alice.ops"

    reply_path = f"/actions/{TEAM}/1/{ALICE}"
    wait_for(lambda: bool(posted(receiver, reply_path)))
    [update] = posted(receiver, reply_path)
    assert update["replace_original"] is True
    assert f"Approved by admin:{BOOTSTRAP_TOKEN_NAME} at " in update["text"]
    assert "approved in Slack by @alice.ops" in update["text"] and approval_id in update["text"]
    assert all(block["type"] != "actions" for block in update["blocks"]), "buttons gone"

    events = tether_any.call("GET", "/audit", params={"session": "s1"}).json()
    [decided] = [e for e in events if e["action"] == "approval:approved"]
    assert decided["actor"] == f"admin:{BOOTSTRAP_TOKEN_NAME}" and decided["source"] == "slack"
    assert decided["attributes"]["slack_user_id"] == ALICE
    assert decided["attributes"]["slack_team_id"] == TEAM
    assert decided["attributes"]["approval_id"] == approval_id


def test_deny_in_slack_denies_the_agents_retries(tether: RunningTether, receiver: Receiver) -> None:
    asked = Asked(tether, receiver)
    set_up_slack(tether)
    approval_id = asked.ask().json()["approval_id"]
    body = click_body(asked.message(), "Deny", receiver)

    assert click(tether, body, signed(body)).status_code == 200

    retry = asked.ask()
    assert retry.status_code == 403 and retry.json()["error"]["code"] == "approval_denied"
    assert "denied in Slack by @alice.ops" in retry.json()["reason"]
    assert state(tether, approval_id) == "denied"
    wait_for(lambda: bool(posted(receiver, f"/actions/{TEAM}/1/{ALICE}")))
    assert "Denied by admin:" in posted(receiver, f"/actions/{TEAM}/1/{ALICE}")[0]["text"]


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (lambda body: signed(body, timestamp=int(time.time()) - 301), "slack_request_expired"),
        (lambda body: signed(body, timestamp=int(time.time()) + 400), "slack_request_expired"),
        (
            lambda body: signed(body, secret="another-apps-signing-secret"),
            "slack_signature_invalid",
        ),
        (lambda body: signed(body + "&x=1"), "slack_signature_invalid"),
        (
            lambda body: {"Content-Type": "application/x-www-form-urlencoded"},
            "slack_signature_invalid",
        ),
    ],
    ids=["expired", "from-the-future", "wrong-secret", "body-changed", "unsigned"],
)
def test_a_request_slack_did_not_sign_now_is_refused(
    tether: RunningTether,
    receiver: Receiver,
    tamper: Callable[[str], dict[str, str]],
    code: str,
) -> None:
    asked = Asked(tether, receiver)
    set_up_slack(tether)
    approval_id = asked.ask().json()["approval_id"]
    body = click_body(asked.message(), "Approve", receiver)

    refused = click(tether, body, tamper(body))

    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == code
    assert state(tether, approval_id) == "pending"
    assert SECRET not in refused.text
    events = tether.call("GET", "/audit", params={"action": "slack:interaction"}).json()
    assert [(e["result"], e["code"], e["actor"]) for e in events] == [
        ("error", code, "slack:unverified")
    ]


def test_a_replayed_click_is_refused(tether_any: RunningTether, receiver: Receiver) -> None:
    asked = Asked(tether_any, receiver)
    set_up_slack(tether_any)
    approval_id = asked.ask().json()["approval_id"]
    body = click_body(asked.message(), "Deny", receiver)
    headers = signed(body)
    assert click(tether_any, body, headers).status_code == 200

    replayed = click(tether_any, body, headers)

    assert replayed.status_code == 401
    assert replayed.json()["error"]["code"] == "slack_request_replayed"
    assert state(tether_any, approval_id) == "denied"


@pytest.mark.parametrize("who", ["unknown-user", "mapped-to-another-project", "other-team"])
def test_only_a_user_mapped_to_the_approvals_project_may_decide(
    tether_any: RunningTether, receiver: Receiver, who: str
) -> None:
    asked = Asked(tether_any, receiver)
    stored = tether_any.call("PUT", "/slack/signing-secret", json={"secret": SECRET})
    assert stored.status_code == 200
    tether_any.create_project("other")
    mapping = {"team_id": TEAM, "user_id": ALICE, "operator": BOOTSTRAP_TOKEN_NAME}
    if who == "mapped-to-another-project":
        tether_any.call("POST", "/projects/other/slack-users", json=mapping)
    elif who == "other-team":
        tether_any.call("POST", "/projects/p/slack-users", json={**mapping, "team_id": "T0OTHER"})
    approval_id = asked.ask().json()["approval_id"]
    body = click_body(asked.message(), "Approve", receiver)

    answer = click(tether_any, body, signed(body))

    assert answer.status_code == 200, "acknowledged: Slack shows the clicker why, not an error"
    assert state(tether_any, approval_id) == "pending"
    reply_path = f"/actions/{TEAM}/1/{ALICE}"
    wait_for(lambda: bool(posted(receiver, reply_path)))
    [reply] = posted(receiver, reply_path)
    assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
    assert (
        f"Slack user {ALICE} (team {TEAM}) may not decide approvals of project p" in reply["text"]
    )
    assert f"tether slack map-user {ALICE} OPERATOR --team {TEAM} --project p" in reply["text"]
    events = tether_any.call("GET", "/audit", params={"action": "slack:interaction"}).json()
    assert [(e["result"], e["code"], e["actor"]) for e in events] == [
        ("error", "slack_user_not_mapped", f"slack:{TEAM}/{ALICE}")
    ]


def test_a_user_mapped_to_a_revoked_operator_decides_nothing(
    tether: RunningTether, receiver: Receiver
) -> None:
    asked = Asked(tether, receiver)
    tether.call("POST", "/tokens", json={"name": "carol", "role": "admin"})
    tether.call("PUT", "/slack/signing-secret", json={"secret": SECRET})
    mapped = tether.call(
        "POST",
        "/projects/p/slack-users",
        json={"team_id": TEAM, "user_id": ALICE, "operator": "carol"},
    )
    assert mapped.status_code == 201, mapped.text
    assert tether.call("DELETE", "/tokens/carol").status_code in (200, 204)
    approval_id = asked.ask().json()["approval_id"]
    body = click_body(asked.message(), "Approve", receiver)

    assert click(tether, body, signed(body)).status_code == 200

    assert state(tether, approval_id) == "pending"
    wait_for(lambda: bool(posted(receiver, f"/actions/{TEAM}/1/{ALICE}")))
    assert "not a live admin token" in posted(receiver, f"/actions/{TEAM}/1/{ALICE}")[0]["text"]


def test_a_click_on_an_approval_already_decided_shows_who_decided(
    tether: RunningTether, receiver: Receiver
) -> None:
    asked = Asked(tether, receiver)
    set_up_slack(tether)
    approval_id = asked.ask().json()["approval_id"]
    tether.call("POST", f"/approvals/{approval_id}/deny", json={"reason": "not today"})
    body = click_body(asked.message(), "Approve", receiver)

    assert click(tether, body, signed(body)).status_code == 200

    assert state(tether, approval_id) == "denied"
    wait_for(lambda: len(posted(receiver, f"/actions/{TEAM}/1/{ALICE}")) == 2)
    replies = posted(receiver, f"/actions/{TEAM}/1/{ALICE}")
    replaced = next(r for r in replies if r.get("replace_original"))
    told = next(r for r in replies if r.get("response_type") == "ephemeral")
    assert "Denied by admin:" in replaced["text"] and "not today" in replaced["text"]
    assert "already denied" in told["text"]


def test_without_a_signing_secret_nothing_is_decided(
    tether: RunningTether, receiver: Receiver
) -> None:
    asked = Asked(tether, receiver)
    approval_id = asked.ask().json()["approval_id"]
    body = click_body(asked.message(), "Approve", receiver)

    refused = click(tether, body, signed(body))

    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "slack_not_configured"
    assert state(tether, approval_id) == "pending"


def test_the_signing_secret_is_never_shown_again(
    tether: RunningTether, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert tether.call("GET", "/slack/signing-secret").json()["set"] is False
    asked = Asked(tether, receiver)
    set_up_slack(tether)
    shown = tether.call("GET", "/slack/signing-secret")
    assert shown.json()["set"] is True
    assert shown.json()["updated_by"] == f"admin:{BOOTSTRAP_TOKEN_NAME}"
    asked.ask()
    body = click_body(asked.message(), "Approve", receiver)
    click(tether, body, signed(body))
    click(tether, body, signed(body, secret="wrong-secret-entirely"))
    everywhere = [
        shown.text,
        tether.call("GET", "/audit", params={"limit": "1000"}).text,
        tether.call("GET", "/projects/p/slack-users").text,
        json.dumps([d.body.decode() for d in receiver.deliveries]),
        caplog.text,
    ]
    assert not [text for text in everywhere if SECRET in text]
    database = make_url(tether.settings.resolved_database_url).database
    assert database is not None
    assert SECRET.encode() not in Path(database).read_bytes(), "sealed at rest"


def test_bad_form_bodies_are_precise_400s(tether: RunningTether) -> None:
    tether.call("PUT", "/slack/signing-secret", json={"secret": SECRET})
    no_user = {"type": "block_actions", "actions": [{"action_id": "tether_approval_approve"}]}
    other_button = {**no_user, "actions": [{"action_id": "someone_elses", "value": "apr_1"}]}
    bodies = [
        "payload=not-json",
        "nothing=here",
        urlencode({"payload": json.dumps({"type": "view_submission"})}),
        urlencode({"payload": json.dumps(no_user)}),
        urlencode({"payload": json.dumps(other_button)}),
    ]
    for body in bodies:
        answer = click(tether, body, signed(body))
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["code"] == "invalid_request"


def test_approve_in_slack_grants_a_group_no_more_than_its_message_showed(
    tether: RunningTether, receiver: Receiver
) -> None:
    """The message is posted when the group opens (one deletion); the click that comes after
    more joined grants nothing and shows them all; a click on that grants those."""
    asked = Asked(tether, receiver)
    set_up_slack(tether)

    def delete(key: str) -> httpx.Response:
        return httpx.post(
            f"{tether.url}/v1/authorize",
            json={
                "session_id": "s1",
                "action": "s3:DeleteObject",
                "resource": f"{BUCKET}/logs/{key}",
            },
            headers={"Authorization": f"Bearer {asked.key}"},
        )

    ids = {delete(key).json()["approval_id"] for key in ("1", "2", "3")}
    assert len(ids) == 1, "one request for the group"
    [approval_id] = ids
    posted_first = asked.message()
    assert "so far 1: " in posted_first["text"]
    body = click_body(posted_first, "Approve", receiver)

    assert click(tether, body, signed(body)).status_code == 200

    assert state(tether, approval_id) == "pending", "the approver saw one deletion, not three"
    reply_path = f"/actions/{TEAM}/1/{ALICE}"
    wait_for(lambda: len(posted(receiver, reply_path)) == 2)
    replies = posted(receiver, reply_path)  # sent apart: in either order
    [regrown] = [reply for reply in replies if reply["replace_original"]]
    [told] = [reply for reply in replies if not reply["replace_original"]]
    assert "so far 3: " in regrown["text"]
    assert all(f"`{BUCKET}/logs/{key}`" in regrown["text"] for key in ("1", "2", "3"))
    assert "now covers 3 actions" in told["text"] and told["replace_original"] is False
    events = tether.call("GET", "/audit", params={"action": "slack:interaction"}).json()
    assert [e["code"] for e in events] == ["approval_grew"]

    body = click_body(regrown, "Approve", receiver)
    assert click(tether, body, signed(body)).status_code == 200

    record = tether.call("GET", f"/approvals/{approval_id}").json()
    assert record["state"] == "approved" and record["prefix"] == f"{BUCKET}/logs/"
    assert record["max_uses"] == 3
    assert [delete(key).status_code for key in ("1", "2", "3", "4")] == [200, 200, 200, 202]
    wait_for(lambda: len(posted(receiver, reply_path)) == 3)
    update = posted(receiver, reply_path)[-1]
    assert f"up to 3 actions under `{BUCKET}/logs/`" in update["text"]


def test_approve_in_slack_grants_a_group_of_one_that_one_action(
    tether: RunningTether, receiver: Receiver
) -> None:
    asked = Asked(tether, receiver)
    set_up_slack(tether)
    resource = f"{BUCKET}/logs/1"
    approval_id = httpx.post(
        f"{tether.url}/v1/authorize",
        json={"session_id": "s1", "action": "s3:DeleteObject", "resource": resource},
        headers={"Authorization": f"Bearer {asked.key}"},
    ).json()["approval_id"]
    body = click_body(asked.message(), "Approve", receiver)

    assert click(tether, body, signed(body)).status_code == 200

    record = tether.call("GET", f"/approvals/{approval_id}").json()
    assert record["state"] == "approved" and record["resource"] == resource
    assert record["prefix"] is None


def test_unsigned_requests_are_recorded_once_a_minute_per_address(
    tether: RunningTether,
) -> None:
    tether.call("PUT", "/slack/signing-secret", json={"secret": SECRET})
    body = urlencode({"payload": json.dumps({"type": "block_actions"})})
    for _ in range(25):
        answer = click(tether, body, signed(body, secret="not-slacks-signing-secret"))
        assert answer.status_code == 401
    events = tether.call("GET", "/audit", params={"action": "slack:interaction"}).json()
    assert [(e["code"], e["attributes"]["refused"]) for e in events] == [
        ("slack_signature_invalid", 1)
    ]
