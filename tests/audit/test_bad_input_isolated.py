"""One malformed request never fails another agent's call: odd input (undecodable header
bytes, a 400-digit integer, a 200-character tool name, NUL characters) is bounded before
it reaches the shared audit batch, on both backends, while good calls run alongside."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.databases import fetch_sql
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether, start_tether
from tether.audit.event import AuditEvent
from tether.errors import AuditEventRejected

GOOD = 40
MESSAGE = {
    "model": "claude-sonnet-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}
HOOK_SESSION = "d97e2169-8a54-4b1e-9f27-3c1f0f8b9a11"


@pytest.fixture
def gateway_any(
    tmp_path: Path, database_url: str, upstream: RunningFake
) -> Iterator[RunningTether]:
    server = start_tether(tmp_path / "data", database_url, anthropic_base_url=upstream.url)
    server.create_project("p", upstream.fake.api_key)
    yield server
    server.stop()


def _hook(tool: str, tool_input: dict[str, Any], event: str = "PreToolUse") -> dict[str, Any]:
    return {
        "session_id": HOOK_SESSION,
        "hook_event_name": event,
        "tool_name": tool,
        "tool_input": tool_input,
        "tool_response": {"ok": True},
        "cwd": "/home/dev/app",
    }


async def _burst(
    tether: RunningTether, key: str
) -> tuple[list[httpx.Response], list[httpx.Response]]:
    auth = {"Authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}
    huge = (
        b'{"action": "s3:GetObject", "resource": "arn:aws:s3:::b/x", "attributes": {"n": 1'
        + b"0" * 400
        + b"}}"
    )
    async with httpx.AsyncClient(base_url=tether.url, timeout=60) as client:
        good = [
            client.post(
                "/v1/authorize",
                json={
                    "session_id": f"s{n % 4}",
                    "action": "s3:GetObject",
                    "resource": f"arn:aws:s3:::b/{n}",
                },
                headers=auth,
            )
            if n % 2
            else client.post(
                "/v1/messages", json=MESSAGE, headers={**auth, "X-Tether-Session-Id": f"m{n % 3}"}
            )
            for n in range(GOOD)
        ]
        bad = [
            request
            for _ in range(3)
            for request in [
                client.post(
                    "/v1/messages", json=MESSAGE, headers={"X-Tether-Session-Id": b"\xff\xfe"}
                ),  # type: ignore[dict-item]
                client.post(
                    "/v1/messages",
                    json=MESSAGE,
                    headers={**auth, "X-Tether-Session-Id": b"\xff\xfe"},
                ),  # type: ignore[dict-item]
                client.post(
                    "/v1/authorize",
                    content=huge,
                    headers={**auth, "Content-Type": "application/json"},
                ),
                client.post(
                    "/v1/authorize",
                    json={
                        "action": "s3:GetObject",
                        "resource": "arn:aws:s3:::b/\x00",
                        "attributes": {"k": "\x00" * 3},
                    },
                    headers=auth,
                ),
                client.post("/hooks/claude-code", json=_hook("T" * 200, {"x": 1}), headers=auth),
                client.post(
                    "/hooks/claude-code",
                    json=_hook("T" * 200, {"x": 1}, "PostToolUse"),
                    headers=auth,
                ),
                client.post(
                    "/hooks/claude-code",
                    json=_hook("Bash", {"command": "echo \x00 ok"}),
                    headers=auth,
                ),
            ]
        ]
        answers = await asyncio.gather(*good, *bad)
    return list(answers[:GOOD]), list(answers[GOOD:])


def _eventually_completed(database_url: str) -> int:
    """Completions are settled after the answer; give them a moment to land."""
    query = "SELECT count(*) AS n FROM audit_events WHERE action = 'model:messages:completed'"
    for _ in range(100):
        found = int(fetch_sql(database_url, query)[0]["n"])
        if found >= GOOD // 2:
            return found
        time.sleep(0.1)
    return found


def test_bad_requests_never_fail_good_ones_sharing_their_batch(
    gateway_any: RunningTether, database_url: str
) -> None:
    key = gateway_any.create_agent("a", "p")
    good, bad = asyncio.run(_burst(gateway_any, key))

    assert [r.status_code for r in good] == [200] * GOOD, [
        r.text for r in good if r.status_code != 200
    ]
    assert all(r.status_code < 500 for r in bad), [(r.status_code, r.text) for r in bad]
    stored = {row["id"] for row in fetch_sql(database_url, "SELECT id FROM audit_events")}
    decided = [r.json()["event_id"] for r in good if "event_id" in r.json()]
    assert len(decided) == GOOD // 2 and set(decided) <= stored
    assert _eventually_completed(database_url) == GOOD // 2

    verified = gateway_any.call("GET", "/audit/verify").json()
    assert verified["intact"], verified
    long_tools = fetch_sql(
        database_url, "SELECT action FROM audit_events WHERE action LIKE '%TTTT%'"
    )
    assert long_tools and all(len(row["action"]) <= 128 for row in long_tools)


def test_an_event_the_database_refuses_fails_only_its_own_call(
    tether_any: RunningTether, database_url: str
) -> None:
    """A row that passes normalisation but that the database still refuses (here: an id
    already taken) is retried alone; its batch-mates are written."""
    taken = AuditEvent("admin:test", "admin", "probe", "r", "ok")

    async def record_together() -> list[BaseException | None]:
        await tether_any.runtime.audit.record(taken)
        batch = [AuditEvent("admin:test", "admin", "probe", f"r{n}", "ok") for n in range(20)]
        clash = AuditEvent("admin:test", "admin", "probe", "dup", "ok", id=taken.id)
        calls = [tether_any.runtime.audit.record(e) for e in [*batch[:10], clash, *batch[10:]]]
        answers = await asyncio.gather(*calls, return_exceptions=True)
        return [a if isinstance(a, BaseException) else None for a in answers]

    answers = tether_any.run(record_together())
    failed = [a for a in answers if a is not None]
    assert len(failed) == 1 and isinstance(failed[0], AuditEventRejected), answers
    stored = fetch_sql(
        database_url, "SELECT count(*) AS n FROM audit_events WHERE action = 'probe'"
    )
    assert stored[0]["n"] == 21
    assert tether_any.call("GET", "/audit/verify").json()["intact"]
