"""Webhook deliveries: a receiver that refuses for good (4xx) is not retried and the
delivery is listed as failed; 408/429 and 5xx are retried until accepted."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from typer.testing import CliRunner

from tests.support.receiver import Receiver
from tests.support.server import RunningTether
from tether.cli.main import app


@pytest.fixture
def cli(tether: RunningTether, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TETHER_URL", tether.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", tether.admin_token)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    gone = Receiver(fail_first=10**6, fail_status=404).start()
    busy = Receiver(fail_first=2, fail_status=429).start()
    yield gone, busy
    gone.stop()
    busy.stop()


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)


def test_a_refused_delivery_is_dead_lettered_and_listed(  # type: ignore[no-untyped-def]
    cli, tether: RunningTether, receivers: tuple[Receiver, Receiver]
) -> None:
    gone, busy = receivers
    tether.create_project("p")
    for receiver in (gone, busy):
        added = tether.call(
            "POST", "/projects/p/webhooks", json={"kind": "slack", "url": receiver.url}
        )
        assert added.status_code == 201, added.text
    tether.set_guards("p", repeat_limit=1)
    key = tether.create_agent("a", "p")
    body: dict[str, Any] = {"session_id": "s", "action": "s3:GetObject", "resource": "arn:x"}
    codes = [
        httpx.post(f"{tether.url}/v1/authorize", json=body, headers={"x-api-key": key}).status_code
        for _ in range(2)
    ]
    assert codes == [200, 423]

    wait_for(lambda: len(busy.deliveries) == 1)
    assert busy.attempts == 3
    assert gone.attempts == 1, "a 404 is not retried"

    failed = cli("webhooks", "deliveries", "p", "--failed", "--json")
    assert failed.exit_code == 0, failed.output
    rows = json.loads(failed.stdout)
    assert [(r["state"], r["attempts"], r["last_error"]) for r in rows] == [
        ("failed", 1, "HTTP 404")
    ]
    everything = json.loads(cli("webhooks", "deliveries", "p", "--json").stdout)
    assert sorted(r["state"] for r in everything) == ["delivered", "failed"]
    table = cli("webhooks", "deliveries", "p")
    assert table.exit_code == 0 and "HTTP 404" in table.output
    bad = tether.call("GET", "/projects/p/webhook-deliveries", params={"state": "lost"})
    assert bad.status_code == 400 and "state must be one of" in bad.text


class Redirecting(Receiver):
    """A receiver that sends every delivery back to itself (307)."""

    async def _handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        raise web.HTTPTemporaryRedirect(location=str(request.url))


def test_a_redirect_is_not_followed_and_the_secret_url_not_kept(
    tether: RunningTether,
) -> None:
    """A Slack webhook's path is its secret: aiohttp followed the redirects, and its
    ``TooManyRedirects`` text, with the whole URL, became the delivery's ``last_error``,
    readable by every viewer token."""
    receiver = Redirecting().start()
    try:
        tether.create_project("p")
        url = f"{receiver.url}/services/T0ACME/B0HOOK/s3cr3tPathOfTheWebhook"
        added = tether.call("POST", "/projects/p/webhooks", json={"kind": "slack", "url": url})
        assert added.status_code == 201, added.text
        tether.set_guards("p", repeat_limit=1)
        key = tether.create_agent("a", "p")
        body: dict[str, Any] = {"session_id": "s", "action": "s3:GetObject", "resource": "arn:x"}
        for _ in range(2):
            httpx.post(f"{tether.url}/v1/authorize", json=body, headers={"x-api-key": key})

        def tried() -> list[dict[str, Any]]:
            rows = tether.call("GET", "/projects/p/webhook-deliveries").json()
            return [r for r in rows if r["last_error"]]

        wait_for(lambda: bool(tried()))
        [row] = tried()
        assert "s3cr3t" not in row["last_error"], row["last_error"]
        assert row["last_error"] == "HTTP 307"
        assert receiver.attempts == row["attempts"], "one request a try, no redirects followed"
    finally:
        receiver.stop()
