"""Dashboard buttons over plain HTTP: each posts one admin call and goes back to its page."""

from __future__ import annotations

import re
from collections.abc import Iterator

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
