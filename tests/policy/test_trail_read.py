"""The trail as replay and suggest read it: the streaming read returns the same decisions
as the paged one (any order, only the columns the fold needs) on each backend, and the
fold counts each distinct request once with its first and last time, whatever the order."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from sqlalchemy import insert

from tether.audit.table import AuditStore
from tether.policy.trail import PastDecision, Tally, TrailSummary, fold_trail
from tether.store.database import Database
from tether.store.migrate import upgrade
from tether.store.schema import audit_events

PROJECT = "p" * 32
DEV = orjson.dumps({"tags": {"env": "dev"}, "policy_rules": ["'dev' (line 1)"]}).decode()
PROD = orjson.dumps({"tags": {"env": "prod"}, "policy_rules": ["'prod' (line 3)"]}).decode()
ROWS: list[tuple[Any, ...]] = [
    # ts, project, agent, action, resource, result, code, attributes
    (1_300, PROJECT, "a1", "s3:GetObject", "arn:aws:s3:::dev/x", "allow", None, DEV),
    (1_100, PROJECT, "a1", "s3:GetObject", "arn:aws:s3:::dev/x", "allow", None, DEV),
    (1_200, PROJECT, "a1", "s3:GetObject", "arn:aws:s3:::dev/x", "allow", None, DEV),
    (1_150, PROJECT, "a2", "s3:PutObject", "arn:aws:s3:::prod/y", "deny", "policy_denied", PROD),
    (1_160, PROJECT, "a2", "s3:PutObject", "arn:aws:s3:::prod/y", "deny", "budget_exceeded", "{}"),
    (1_170, PROJECT, "a2", "tool_result", "arn:aws:s3:::prod/y", "allow", None, "{}"),
    (1_180, PROJECT, "a2", "file:Read", "/srv/a", "error", "upstream", "{}"),
    (1_190, "q" * 32, "a1", "s3:GetObject", "arn:aws:s3:::dev/x", "allow", None, DEV),
    (9_000, PROJECT, "a1", "s3:GetObject", "arn:aws:s3:::dev/x", "allow", None, DEV),
]


async def _read(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], TrailSummary]:
    db = Database(url)
    try:
        await upgrade(db)
        async with db.write() as conn:
            await conn.execute(
                insert(audit_events),
                [
                    {
                        "id": f"{n:032x}",
                        "ts": ts,
                        "project_id": project,
                        "agent_id": agent,
                        "agent_name": agent,
                        "session_id": "s",
                        "actor": f"agent:{agent}",
                        "source": "authorize",
                        "action": action,
                        "resource": resource,
                        "result": result,
                        "code": code,
                        "reason": "r",
                        "attributes": attributes,
                        "seq": n + 1,
                    }
                    for n, (ts, project, agent, action, resource, result, code, attributes) in (
                        enumerate(ROWS)
                    )
                ],
            )
        store = AuditStore(db)
        window = {"project_id": PROJECT, "since_ms": 1_000, "until_ms": 2_000}
        paged = [tuple(r)[:8] async for page in store.decision_pages(**window) for r in page]
        streamed = [tuple(r) async for page in store.decision_rows(**window) for r in page]
        summary = TrailSummary()
        await fold_trail(store.decision_rows(**window), summary)
        return paged, streamed, summary
    finally:
        await db.dispose()


def test_the_streamed_trail_is_the_paged_trail_and_folds_once_per_request(
    database_url: str,
) -> None:
    paged, streamed, summary = asyncio.run(_read(database_url))
    assert len(paged) == 6
    assert sorted(streamed) == sorted(paged)
    tags_dev, tags_prod = (("env", "dev"),), (("env", "prod"),)
    assert summary.decisions == {
        PastDecision("a1", "s3:GetObject", "arn:aws:s3:::dev/x", tags_dev, "authorize", True): (
            Tally(3, 1_100, 1_300)
        ),
        PastDecision("a2", "s3:PutObject", "arn:aws:s3:::prod/y", tags_prod, "authorize", False): (
            Tally(1, 1_150, 1_150)
        ),
    }
    assert all(type(past) is PastDecision for past in summary.decisions)
    assert summary.total == 4
    assert summary.rule_matches == {"'dev' (line 1)": 3, "'prod' (line 3)": 1}
