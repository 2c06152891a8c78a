"""Dashboard buttons over plain HTTP: each posts one admin call and goes back to its page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote, urljoin

import httpx
import pytest

from tests.support.server import RunningTether


@pytest.fixture
def operator(tether: RunningTether) -> Iterator[tuple[httpx.Client, str]]:
    """A client logged in with the admin token, and its login's CSRF token."""
    with httpx.Client(base_url=f"{tether.url}/ui", timeout=10) as client:
        assert client.post("/login", data={"token": tether.admin_token}).status_code == 303
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/overview").text)
        assert csrf is not None
        yield client, csrf.group(1)


@pytest.mark.parametrize(
    ("button", "back", "flash"),
    [
        ("/agents/worker/stop", "/agents/worker", "Agent stopped."),
        ("/agents/worker/quarantine", "/agents/worker", "Agent quarantined."),
        ("/projects/p/pause", "/projects/p", "Project paused."),
        ("/fleet/pause", "/overview", "Fleet paused."),
    ],
)
def test_a_state_button_changes_the_state_and_goes_back(
    tether: RunningTether,
    operator: tuple[httpx.Client, str],
    button: str,
    back: str,
    flash: str,
) -> None:
    client, csrf = operator
    tether.create_project("p")
    tether.create_agent("worker", "p")
    answer = client.post(button, data={"csrf": csrf, "reason": "seen from the dashboard"})
    assert answer.status_code == 303, answer.text
    assert answer.headers["Location"].startswith(f"/ui{back}?done=")
    assert flash in client.get(answer.headers["Location"]).text
    if button.startswith("/agents"):
        agent = tether.call("GET", "/agents/worker").json()
        assert agent["state"] != "active"
        assert agent["state_reason"] == "seen from the dashboard"
    elif button.startswith("/projects"):
        assert tether.call("GET", "/projects/p").json()["paused"]
    else:
        assert tether.call("GET", "/pause").json()["paused"]


@pytest.mark.parametrize(
    "button", ["/agents/worker/pause", "/projects/p/stop", "/fleet/stop", "/approvals/x/maybe"]
)
def test_an_unknown_change_is_404(
    tether: RunningTether, operator: tuple[httpx.Client, str], button: str
) -> None:
    client, csrf = operator
    tether.create_project("p")
    tether.create_agent("worker", "p")
    assert client.post(button, data={"csrf": csrf}).status_code == 404
    assert tether.call("GET", "/agents/worker").json()["state"] == "active"


GROUP_POLICY = """\
permit(principal, action == Action::"file:Delete", resource)
when { resource.arn like "/home/dev/app/*" };
"""


def _ask_for_a_group(tether: RunningTether, files: int) -> dict:
    """A Claude Code hook asking to delete many files: one grouped approval request."""
    tether.create_project("p", policy=GROUP_POLICY)
    key = tether.create_agent("claude-dev", "p")
    command = "rm " + " ".join(f"out/f{i}.o" for i in range(files))
    body = {
        "session_id": "d97e2169-8a54-4b1e-9f27-3c1f0f8b9a11",
        "cwd": "/home/dev/app",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": command},
        "tool_use_id": "toolu_01",
    }
    answer = httpx.post(
        f"{tether.url}/hooks/claude-code",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    (group,) = tether.call("GET", "/approvals").json()
    return group  # type: ignore[no-any-return]


def test_a_group_is_approved_from_the_dashboard_as_narrowed_there(
    tether: RunningTether, operator: tuple[httpx.Client, str]
) -> None:
    client, csrf = operator
    group = _ask_for_a_group(tether, 40)
    page = client.get(f"/approvals/{group['id']}").text
    assert "40 actions under" in page and 'name="max_uses" value="40"' in page
    assert 'name="prefix" value="/home/dev/app/out/"' in page

    answer = client.post(
        f"/approvals/{group['id']}/approve",
        data={
            "csrf": csrf,
            "reason": "",
            "prefix": "/home/dev/app/out/f1",
            "max_uses": "5",
            "ttl_seconds": "60",
        },
    )
    assert answer.status_code == 303, answer.text
    shown = tether.call("GET", f"/approvals/{group['id']}").json()
    assert shown["state"] == "approved" and shown["max_uses"] == 5
    assert shown["prefix"] == "/home/dev/app/out/f1"


@pytest.mark.parametrize(
    ("field", "value", "word"),
    [
        ("max_uses", "41", "more than the 40"),
        ("prefix", "/home/dev/", "not under the asked prefix"),
        ("max_uses", "many", "whole number"),
    ],
)
def test_the_dashboard_cannot_widen_a_group(
    tether: RunningTether, operator: tuple[httpx.Client, str], field: str, value: str, word: str
) -> None:
    client, csrf = operator
    group = _ask_for_a_group(tether, 40)
    answer = client.post(
        f"/approvals/{group['id']}/approve", data={"csrf": csrf, "reason": "", field: value}
    )
    assert answer.status_code == 400, answer.text
    assert word in answer.text
    assert tether.call("GET", f"/approvals/{group['id']}").json()["state"] == "pending"


DELETIONS_ASKED = (
    'permit(principal, action, resource) when { resource.arn like "arn:aws:s3:::dev-*" };'
)


def test_a_session_id_chosen_to_reach_another_route_kills_that_session_only(
    tether: RunningTether, operator: tuple[httpx.Client, str]
) -> None:
    """An agent names its session ``…/../../approvals/A/approve?``: HTML-escaped only,
    the Sessions page's Kill form posted to the approval instead, with the operator's
    CSRF token, and approved the agent's own pending deletion."""
    client, csrf = operator
    tether.create_project("p", policy=DELETIONS_ASKED)
    key = tether.create_agent("sly", "p")

    def authorize(session_id: str, action: str, resource: str) -> httpx.Response:
        return httpx.post(
            f"{tether.url}/v1/authorize",
            json={"session_id": session_id, "action": action, "resource": resource},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )

    asked = authorize("s-asks", "s3:DeleteBucket", "arn:aws:s3:::dev-data")
    assert asked.status_code == 202, asked.text
    approval_id = asked.json()["approval_id"]
    sly = f"0f3c5d2e-0b1a-4c55-9e61-5a7d/../../approvals/{approval_id}/approve?"
    assert authorize(sly, "s3:GetObject", "arn:aws:s3:::dev-data/a").status_code == 200

    page = client.get("/sessions")
    forms = re.findall(r'<form method="post" action="([^"]+/kill)"', page.text)
    [kill] = [action for action in forms if "approvals" in action or "%2F" in action]
    target = urljoin(str(page.url), kill.replace("&amp;", "&"))  # as a browser resolves it
    answer = client.post(target, data={"csrf": csrf, "reason": "looked wrong"})

    assert answer.status_code == 303, answer.text
    assert tether.call("GET", f"/approvals/{approval_id}").json()["state"] == "pending"
    killed = tether.call("GET", f"/sessions/{quote(sly, safe='')}").json()
    assert killed["state"] == "terminated", killed
