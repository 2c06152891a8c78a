"""The audit trail through its front doors (HTTP and the CLI), on both backends: every
event hash-chained, verification that finds tampering, exports verifiable offline,
anchors that catch a rewritten chain, and a session replayed as a timeline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from typer.testing import CliRunner

from tests.support.databases import fetch_sql, run_sql
from tests.support.fake_upstream import RunningFake
from tests.support.model_calls import post_retrying_busy
from tests.support.server import RunningTether
from tether.audit.chain import BASE_COLUMNS, ChainHead, link
from tether.cli.main import app
from tether.fakes.anthropic import FakeReply


@pytest.fixture
def cli(tether_any: RunningTether, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TETHER_URL", tether_any.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", tether_any.admin_token)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def some_decisions(tether: RunningTether, count: int = 6) -> None:
    tether.create_project("p")
    key = tether.create_agent("a", "p")
    for n in range(count):
        answer = httpx.post(
            f"{tether.url}/v1/authorize",
            json={"session_id": "s1", "action": "s3:GetObject", "resource": f"arn:aws:s3:::b/{n}"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 200, answer.text


def test_tampering_with_any_stored_event_is_found(
    cli, tether_any: RunningTether, database_url: str
) -> None:  # type: ignore[no-untyped-def]
    some_decisions(tether_any)
    intact = cli("audit", "verify")
    assert intact.exit_code == 0, intact.output
    assert "intact" in intact.output
    report = tether_any.call("GET", "/audit/verify").json()
    assert report["intact"] and report["checked"] == report["head_seq"] >= 6

    run_sql(database_url, "UPDATE audit_events SET result = 'deny' WHERE seq = 5")
    changed = cli("audit", "verify", "--json")
    assert changed.exit_code == 1
    found = json.loads(changed.output)
    assert found["first_break"]["seq"] == 5
    assert "changed after it was written" in found["first_break"]["problem"]

    run_sql(database_url, "UPDATE audit_events SET result = 'allow' WHERE seq = 5")
    run_sql(database_url, "DELETE FROM audit_events WHERE seq = 3")
    removed = cli("audit", "verify")
    assert removed.exit_code == 1 and "events are missing" in removed.output


def test_events_appended_between_the_gateways_batches_keep_one_intact_chain(
    tether_any: RunningTether,
) -> None:
    """A session's kill commits its own event with the state change, moving the chain's
    head past where the audit writer left it; the writer's next batch links after it."""
    some_decisions(tether_any, count=3)
    key = tether_any.create_agent("b", "p")

    def authorize(session: str, resource: str) -> None:
        answer = httpx.post(
            f"{tether_any.url}/v1/authorize",
            json={"session_id": session, "action": "s3:GetObject", "resource": resource},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 200, answer.text

    for round_ in range(3):
        authorize(f"killed-{round_}", "r")
        killed = tether_any.call("POST", f"/sessions/killed-{round_}/kill", json={"reason": "x"})
        assert killed.status_code == 200, killed.text
        authorize(f"goes-on-{round_}", "r1")
        authorize(f"goes-on-{round_}", "r2")
    report = tether_any.call("GET", "/audit/verify").json()
    assert report["intact"], report["first_break"]
    assert report["checked"] == report["head_seq"] >= 3 + 3 * 4


def test_cutting_the_newest_events_is_found(
    cli, tether_any: RunningTether, database_url: str
) -> None:  # type: ignore[no-untyped-def]
    some_decisions(tether_any)
    head = tether_any.call("GET", "/audit/verify").json()["head_seq"]
    run_sql(database_url, f"DELETE FROM audit_events WHERE seq >= {head - 1}")
    cut = cli("audit", "verify")
    assert cut.exit_code == 1 and "newest events were removed" in cut.output


def test_an_export_verifies_offline_and_its_anchor_catches_a_rewritten_chain(
    cli, tether_any: RunningTether, database_url: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    some_decisions(tether_any)
    out = tmp_path / "trail.jsonl"
    exported = cli("audit", "export", "--out", str(out))
    assert exported.exit_code == 0, exported.output
    anchor = exported.output.split("--expect ")[1].split()[0]
    lines = out.read_bytes().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert cli("audit", "verify", "--file", str(out)).exit_code == 0
    assert cli("audit", "verify", "--expect", anchor).exit_code == 0

    edited = json.loads(lines[1])
    edited["reason"] = "nothing to see here"
    (tmp_path / "edited.jsonl").write_bytes(
        b"\n".join([lines[0], json.dumps(edited).encode(), *lines[2:]])
    )
    bad_file = cli("audit", "verify", "--file", str(tmp_path / "edited.jsonl"))
    assert bad_file.exit_code == 1 and "#2" in bad_file.output

    whole = cli("audit", "verify", "--file", str(out))
    assert "from #1 (the start of the trail)" in whole.output
    (tmp_path / "cut.jsonl").write_bytes(b"\n".join(lines[2:]))
    for extra in ([], ["--expect", anchor]):
        cut = cli("audit", "verify", "--file", str(tmp_path / "cut.jsonl"), *extra)
        assert cut.exit_code == 1 and "oldest events are missing" in cut.output, cut.output
    named = cli("audit", "verify", "--file", str(tmp_path / "cut.jsonl"), "--from-seq", "3")
    assert named.exit_code == 0 and "from #3" in named.output and "NOT anchored" in named.output
    second = json.loads(lines[1])
    continued = cli(
        "audit", "verify", "--file", str(tmp_path / "cut.jsonl"),
        "--expect", f"2:{second['hash']}",
    )  # fmt: skip
    assert continued.exit_code == 0 and "continuing the --expect anchor" in continued.output

    rewrite_whole_chain_from_event_2(database_url)
    fooled = cli("audit", "verify")
    assert fooled.exit_code == 0, "a chain recomputed by someone with database access verifies"
    assert cli("audit", "verify", "--file", str(out), "--expect", anchor).exit_code == 0
    live = cli("audit", "verify", "--expect", anchor, "--json")
    assert live.exit_code == 1
    assert "rewritten" in json.loads(live.output)["first_break"]["problem"]
    wrong = cli("audit", "verify", "--expect", "12:abc")
    assert wrong.exit_code != 0 and "SEQ:HASH" in wrong.output
    missing = cli("audit", "verify", "--file", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code != 0 and "cannot read" in missing.output
    unwritable = cli("audit", "export", "--out", str(tmp_path / "no-dir" / "x.jsonl"))
    assert unwritable.exit_code != 0 and "cannot write" in unwritable.output
    bad_cursor = tether_any.call("GET", "/audit", params={"after_seq": "-1"})
    assert bad_cursor.status_code == 400 and "after_seq" in bad_cursor.text


def rewrite_whole_chain_from_event_2(database_url: str) -> None:
    """What an attacker who knows the scheme does: change an event, then recompute every
    later hash and the head so that the chain verifies again."""
    stored = fetch_sql(database_url, "SELECT * FROM audit_events ORDER BY seq")
    stored[1]["reason"] = "nothing to see here"
    rows = [tuple(event[c] for c in BASE_COLUMNS) for event in stored[1:]]
    linked, head = link(rows, ChainHead(1, stored[0]["hash"]))
    for row in linked:
        reason = row[BASE_COLUMNS.index("reason")].replace("'", "''")
        run_sql(
            database_url,
            f"UPDATE audit_events SET reason = '{reason}', prev_hash = '{row[-2]}', "
            f"hash = '{row[-1]}' WHERE seq = {row[-3]}",
        )
    run_sql(database_url, f"UPDATE audit_chain SET seq = {head.seq}, hash = '{head.hash}'")


def test_a_session_replays_as_a_timeline_in_order(
    gateway: RunningTether,
    upstream: RunningFake,
    monkeypatch: pytest.MonkeyPatch,
    sdk: Callable[..., anthropic.Anthropic],
) -> None:
    key = gateway.create_agent("claude-deploy-01", "p")
    agent = sdk(gateway, key, session="d97e2169")
    upstream.fake.enqueue(FakeReply(kind="tool_use", tool_input={"command": "terraform plan"}))
    agent.messages.create(
        model="claude-sonnet-5", max_tokens=50, messages=[{"role": "user", "content": "plan"}]
    )
    agent.messages.create(
        model="claude-sonnet-5", max_tokens=50, messages=[{"role": "user", "content": "apply"}]
    )
    gateway.call("POST", "/sessions/d97e2169/kill", json={"reason": "enough"})
    monkeypatch.setenv("TETHER_URL", gateway.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", gateway.admin_token)
    runner = CliRunner()

    def replayed() -> list[dict]:
        result = runner.invoke(app, ["audit", "replay", "d97e2169", "--json"])
        assert result.exit_code == 0, result.output
        events: list[dict] = json.loads(result.output)
        return events

    import time

    deadline = time.monotonic() + 5
    while len(replayed()) < 5:
        assert time.monotonic() < deadline, "completion events not recorded"
        time.sleep(0.05)
    events = replayed()
    actions = [e["action"] for e in events]
    assert actions[:3] == ["model:messages", "model:messages:completed", "tool_use:Bash"]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    table = runner.invoke(app, ["audit", "replay", "d97e2169"], terminal_width=200)
    assert table.exit_code == 0
    assert "session d97e2169 (claude-deploy-01)" in table.output and "$0.0001" in table.output
    missing = runner.invoke(app, ["audit", "replay", "no-such-session"])
    assert missing.exit_code != 0 and "no audit events" in missing.output


def test_two_replicas_append_to_one_intact_chain(
    replicas: tuple[RunningTether, RunningTether],
) -> None:
    first, second = replicas
    first.create_project("p")
    key = first.create_agent("a", "p")

    busy: list[str] = []

    async def burst(tether: RunningTether, client: httpx.AsyncClient, n: int) -> int:
        """A 503 is retried: the chain must hold whatever order the writes land in."""
        answer, retried = await post_retrying_busy(
            client,
            f"{tether.url}/v1/authorize",
            {"session_id": f"s{n % 7}", "action": "s3:GetObject", "resource": f"r{n}"},
            {"Authorization": f"Bearer {key}"},
        )
        busy.extend(retried)
        return answer.status_code

    async def both() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(
                *[burst(first if n % 2 else second, client, n) for n in range(120)]
            )

    assert set(asyncio.run(both())) == {200}, busy
    report = second.call("GET", "/audit/verify").json()
    assert report["intact"], report["first_break"]
    assert report["checked"] == report["head_seq"] >= 120


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real S3 API (moto in server mode) that the CLI reaches with its own credentials."""
    import socket

    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    client = boto3.client("s3")
    client.create_bucket(Bucket="audit-archive")
    try:
        yield client
    finally:
        client.close()
        server.stop()


def test_an_export_goes_to_an_s3_bucket_the_user_owns_and_verifies_from_there(
    cli, tether_any: RunningTether, s3: Any
) -> None:  # type: ignore[no-untyped-def]
    some_decisions(tether_any)
    exported = cli("audit", "export", "--out", "s3://audit-archive/trails/2026-11-25.jsonl")
    assert exported.exit_code == 0, exported.output
    anchor = exported.output.split("--expect ")[1].split()[0]
    stored = s3.head_object(Bucket="audit-archive", Key="trails/2026-11-25.jsonl")
    assert stored["Metadata"]["tether-anchor"] == anchor
    checked = cli("audit", "verify", "--file", "s3://audit-archive/trails/2026-11-25.jsonl")
    assert checked.exit_code == 0, checked.output
    assert f"#{anchor.split(':')[0]}" in checked.output
    missing = cli("audit", "verify", "--file", "s3://audit-archive/nope.jsonl")
    assert missing.exit_code != 0 and "cannot use s3://audit-archive/nope.jsonl" in missing.output
    no_bucket = cli("audit", "export", "--out", "s3://not-a-bucket/x.jsonl")
    assert no_bucket.exit_code != 0 and "NoSuchBucket" in no_bucket.output
    assert cli("audit", "export", "--out", "s3://only-a-bucket").exit_code != 0
