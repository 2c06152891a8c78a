# ruff: noqa: F811  (the browser fixtures are imported from the dashboard e2e module)
"""The pages an operator opens during an incident, in a real headless Chromium: Readiness,
Sessions (filter, kill, stop) and a session's timeline."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_dashboard_e2e import (  # noqa: F401  (fixtures)
    CHROMIUM,
    artifacts,
    browser,
    log_in,
    model_call,
    page,
    playwright,
)
from tests.support.server import RunningTether

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium")


def hook(tether: RunningTether, key: str, body: dict) -> httpx.Response:
    return httpx.post(
        f"{tether.url}/hooks/claude-code",
        headers={"Authorization": f"Bearer {key}"},
        json=body,
        timeout=10,
    )


def test_readiness_page_shows_each_check_with_its_fix(
    page: playwright.Page, gateway: RunningTether, artifacts: Path
) -> None:
    gateway.create_agent("worker", "p")
    ran = gateway.call("POST", "/projects/p/drills/kill")
    assert ran.status_code == 200 and ran.json()["ok"], ran.text
    log_in(page, gateway, gateway.admin_token)
    page.click("nav a:has-text('Readiness')")
    project = page.locator("section[data-project='p']")
    project.wait_for()
    assert "pass" in project.locator("tr[data-check='drill_kill']").inner_text()
    pause = project.locator("tr[data-check='drill_pause']").inner_text()
    assert "fail" in pause and "tether drill pause -p p" in pause
    assert "fail" in project.locator("h2").inner_text()
    page.screenshot(path=str(artifacts / "readiness.png"), full_page=True)


def test_sessions_page_filters_and_kills(
    page: playwright.Page, gateway: RunningTether, artifacts: Path
) -> None:
    first = gateway.create_agent("alpha", "p")
    second = gateway.create_agent("beta", "p")
    assert model_call(gateway, first, "s-alpha").status_code == 200
    assert model_call(gateway, second, "s-beta").status_code == 200
    log_in(page, gateway, gateway.admin_token)
    page.goto(f"{gateway.url}/ui/sessions")
    assert page.locator("tr[data-session]").count() == 2
    assert "model:messages" in page.locator("tr[data-session='s-alpha']").inner_text()
    page.select_option("select[name=agent]", "beta")
    page.click("button:has-text('Filter')")
    page.wait_for_url("**/ui/sessions?**agent=beta**")
    assert [r.get_attribute("data-session") for r in page.locator("tr[data-session]").all()] == [
        "s-beta"
    ]
    page.screenshot(path=str(artifacts / "sessions.png"), full_page=True)
    page.locator("tr[data-session='s-beta'] button:has-text('Kill')").click()
    page.wait_for_selector("text=Session terminated.")
    assert model_call(gateway, second, "s-beta").status_code == 423
    assert model_call(gateway, first, "s-alpha").status_code == 200
    page.goto(f"{gateway.url}/ui/sessions?agent=alpha")
    page.locator("tr[data-session='s-alpha'] button:has-text('Stop agent')").click()
    page.wait_for_selector("text=Agent stopped.")
    assert model_call(gateway, first, "s-alpha").status_code == 423


def test_session_timeline_reads_in_order_with_deciders_and_durations(
    page: playwright.Page, gateway: RunningTether, artifacts: Path
) -> None:
    key = gateway.create_agent("coder", "p")
    assert model_call(gateway, key, "s-t").status_code == 200
    pre = {
        "session_id": "s-t",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_use_id": "toolu_1",
        "tool_input": {"command": "ls /srv"},
    }
    assert hook(gateway, key, pre).status_code == 200
    post = {**pre, "hook_event_name": "PostToolUse", "tool_response": {"stdout": "app"}}
    assert hook(gateway, key, post).status_code == 200
    log_in(page, gateway, gateway.admin_token)
    page.goto(f"{gateway.url}/ui/sessions/s-t")
    rows = page.locator("table.timeline tbody tr")
    kinds = [r.get_attribute("data-kind") for r in rows.all()]
    assert kinds.index("model turn") < kinds.index("tool call") < kinds.index("tool result")
    tool = page.locator("tr[data-kind='tool call']").first.inner_text()
    assert "PreToolUse hook" in tool and "allow" in tool
    result = page.locator("tr[data-kind='tool result']").first.inner_text()
    assert "PostToolUse hook" in result and " ms" in result
    completed = page.locator("tr[data-kind='model turn']").last.inner_text()
    assert "HTTP 200" in completed and " ms" in completed
    page.screenshot(path=str(artifacts / "timeline.png"), full_page=True)


def test_chart_axis_labels_are_at_the_page_type_size(
    page: playwright.Page, gateway: RunningTether
) -> None:
    key = gateway.create_agent("worker", "p")
    for n in range(3):
        assert model_call(gateway, key, f"s-{n}").status_code == 200
    log_in(page, gateway, gateway.admin_token)
    labels = page.locator(".chart-label")
    labels.first.wait_for()
    sizes = {
        labels.nth(i).evaluate("e => getComputedStyle(e).fontSize") for i in range(labels.count())
    }
    assert sizes == {"12px"}
    box = labels.first.bounding_box()
    assert box is not None and box["height"] >= 12
