"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against a
real tether and the fake upstream: what an operator sees and what their clicks do."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import RunningTether

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[playwright.Browser]:
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: playwright.Browser) -> Iterator[playwright.Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    opened.on("dialog", lambda dialog: dialog.accept())
    yield opened
    context.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Screenshots go to $TETHER_TEST_ARTIFACTS when set (CI keeps them), else tmp_path."""
    where = Path(os.environ.get("TETHER_TEST_ARTIFACTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def log_in(page: playwright.Page, tether: RunningTether, token: str) -> None:
    page.goto(f"{tether.url}/ui/")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/overview$"))


def ask(tether: RunningTether, key: str, session: str, path: str) -> httpx.Response:
    return httpx.post(
        f"{tether.url}/v1/authorize",
        headers={"Authorization": f"Bearer {key}"},
        json={"session_id": session, "action": "file:Delete", "resource": path},
        timeout=10,
    )


def model_call(tether: RunningTether, key: str, session: str) -> httpx.Response:
    return httpx.post(
        f"{tether.url}/v1/messages",
        headers={
            "x-api-key": key,
            "anthropic-version": "2023-06-01",
            "X-Tether-Session-Id": session,
        },
        json={
            "model": "claude-sonnet-4",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}],
        },
        timeout=10,
    )


def test_terminate_a_live_session_refuses_its_next_request(
    page: playwright.Page, gateway: RunningTether, artifacts: Path
) -> None:
    key = gateway.create_agent("worker", "p")
    log_in(page, gateway, gateway.admin_token)
    assert model_call(gateway, key, "live-1").status_code == 200
    row = page.locator("tr[data-session='live-1']")
    row.wait_for()  # appears without a reload: the list refreshes itself
    assert "worker" in row.inner_text()
    page.screenshot(path=str(artifacts / "overview-live.png"), full_page=True)

    row.locator("a").first.click()
    page.fill("input[name=reason]", "runaway in the demo")
    page.click("button:has-text('Terminate')")
    page.wait_for_selector("text=Session terminated.")
    page.screenshot(path=str(artifacts / "session-terminated.png"), full_page=True)

    refused = model_call(gateway, key, "live-1")
    assert refused.status_code == 423
    assert "runaway in the demo" in refused.text


def test_approve_one_deletion_and_deny_another(
    page: playwright.Page, gateway: RunningTether, artifacts: Path
) -> None:
    key = gateway.create_agent("janitor", "p")
    first = ask(gateway, key, "s-approve", "/srv/dev/cache-1").json()["approval_id"]
    second = ask(gateway, key, "s-deny", "/srv/dev/cache-2").json()["approval_id"]
    log_in(page, gateway, gateway.admin_token)
    page.goto(f"{gateway.url}/ui/approvals")
    page.screenshot(path=str(artifacts / "approvals-pending.png"), full_page=True)

    row = page.locator(f"tr[data-approval='{first}']")
    row.locator("input[name=reason]").first.fill("cache only")
    row.locator("button:has-text('Approve')").click()
    page.wait_for_selector("text=Approved.")
    assert ask(gateway, key, "s-approve", "/srv/dev/cache-1").json()["decision"] == "allow"

    page.goto(f"{gateway.url}/ui/approvals")
    row = page.locator(f"tr[data-approval='{second}']")
    row.locator("input[name=reason]").last.fill("that cache is still in use")
    row.locator("button:has-text('Deny')").click()
    page.wait_for_selector("text=Denied.")
    denied = ask(gateway, key, "s-deny", "/srv/dev/cache-2")
    assert denied.status_code == 403
    assert "that cache is still in use" in denied.text
    page.goto(f"{gateway.url}/ui/approvals")
    decided = page.locator("table").nth(1).inner_text()
    assert "admin:bootstrap" in decided or "bootstrap" in decided
    page.screenshot(path=str(artifacts / "approvals-decided.png"), full_page=True)


def test_a_viewer_sees_no_buttons(
    page: playwright.Page, gateway: RunningTether, artifacts: Path
) -> None:
    key = gateway.create_agent("worker", "p")
    model_call(gateway, key, "seen-1")
    ask(gateway, key, "seen-1", "/srv/dev/x")
    made = gateway.call("POST", "/tokens", json={"name": "watcher", "role": "viewer"})
    log_in(page, gateway, made.json()["secret"])
    pending = gateway.call("GET", "/approvals").json()[0]["id"]
    for path in (
        "/ui/overview",
        "/ui/sessions/seen-1",
        "/ui/agents/worker",
        "/ui/projects/p",
        "/ui/projects",
        "/ui/approvals",
        f"/ui/approvals/{pending}",
    ):
        page.goto(gateway.url + path)
        assert page.locator("form[method=post]:not(.who)").count() == 0, path
        assert page.locator("button:not(.quiet)").count() == 0, path
    page.screenshot(path=str(artifacts / "viewer-approval.png"), full_page=True)


def test_a_bad_token_is_refused(page: playwright.Page, gateway: RunningTether) -> None:
    agent_key = gateway.create_agent("worker", "p")
    for token in ("tta_not-a-real-token", agent_key):
        page.goto(f"{gateway.url}/ui/login")
        page.fill("input[name=token]", token)
        page.click("button[type=submit]")
        page.wait_for_selector("[role=alert]")
        assert page.url.endswith("/ui/login")
    page.goto(f"{gateway.url}/ui/overview")
    assert page.url.endswith("/ui/login")


def test_a_form_without_its_csrf_token_is_refused(
    page: playwright.Page, gateway: RunningTether
) -> None:
    key = gateway.create_agent("worker", "p")
    model_call(gateway, key, "kept-1")
    log_in(page, gateway, gateway.admin_token)
    page.goto(f"{gateway.url}/ui/sessions/kept-1")
    page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())")
    page.click("button:has-text('Terminate')")
    page.wait_for_selector("text=csrf_failed")
    assert gateway.call("GET", "/sessions/kept-1").json()["state"] == "active"
