"""Signed anchors kept automatically, and what they catch: a trail rewritten and re-hashed
from #1 by someone with database access passes the hash-chain walk, and fails
``tether audit verify --anchors``. Then retention: ``tether audit prune`` only behind a
verified incremental export, and the trail stays verifiable across the cut."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from tests.support.server import RunningTether, start_tether
from tether.audit.anchors import Anchor
from tether.audit.chain import BASE_COLUMNS, GENESIS, ChainHead, link
from tether.cli.main import app
from tether.store.schema import audit_events


@pytest.fixture
def anchored(tmp_path: Path, database_url: str) -> Any:
    server = start_tether(
        tmp_path / "data",
        database_url,
        audit_anchor_every=0.1,
        audit_anchor_dest=str(tmp_path / "anchors"),
    )
    yield server
    server.stop()


def cli(server: RunningTether, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("TETHER_URL", server.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", server.admin_token)
    return CliRunner().invoke(app, list(args))


def traffic(server: RunningTether, calls: int = 5) -> None:
    server.create_project("p")
    key = server.create_agent("a", "p")
    for n in range(calls):
        answer = httpx.post(
            f"{server.url}/v1/authorize",
            json={"session_id": "s", "action": "s3:GetObject", "resource": f"arn:aws:s3:::b/{n}"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 200, answer.text


def anchors_in(root: Path) -> list[Anchor]:
    return [Anchor.from_json(p.read_bytes(), str(p)) for p in sorted(root.rglob("*.json"))]


def wait_for_anchor(server: RunningTether, root: Path) -> None:
    head = server.run(server.runtime.audit_store.chain_head())
    deadline = time.monotonic() + 10
    while not any(a.seq >= head.seq - 1 for a in anchors_in(root)):
        assert time.monotonic() < deadline, "no anchor was written"
        time.sleep(0.05)
    assert server.runtime.anchors is not None
    server.run(server.runtime.anchors.stop())


async def rewrite_and_rehash(server: RunningTether, seq: int, reason: str) -> None:
    """What an attacker with the database does: change an event, recompute every hash."""
    db = server.runtime.db
    async with db.write() as conn:
        # Take the chain's write lock first, as the appender does, so no event lands
        # between reading the trail and moving its head.
        await conn.execute(text("UPDATE audit_chain SET seq = seq WHERE id = 1"))
        rows = (
            await conn.execute(
                select(*[audit_events.c[c] for c in BASE_COLUMNS]).order_by(audit_events.c.seq)
            )
        ).all()
        changed = [
            tuple(
                reason if c == "reason" and n + 1 == seq else v
                for c, v in zip(BASE_COLUMNS, r, strict=True)
            )
            for n, r in enumerate(rows)
        ]
        linked, head = link(changed, ChainHead(0, GENESIS))
        for row in linked:
            await conn.execute(
                text(
                    "UPDATE audit_events SET reason = :reason, prev_hash = :prev, hash = :hash "
                    "WHERE seq = :seq"
                ),
                {
                    "reason": row[BASE_COLUMNS.index("reason")],
                    "prev": row[-2],
                    "hash": row[-1],
                    "seq": row[-3],
                },
            )
        await conn.execute(
            text("UPDATE audit_chain SET seq = :seq, hash = :hash WHERE id = 1"),
            {"seq": head.seq, "hash": head.hash},
        )


def test_a_trail_rewritten_and_rehashed_wholesale_is_caught_by_the_signed_anchors(
    anchored: RunningTether, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    traffic(anchored)
    wait_for_anchor(anchored, tmp_path / "anchors")
    anchors = anchors_in(tmp_path / "anchors")
    key = cli(anchored, monkeypatch, "audit", "public-key", "--json")
    assert key.exit_code == 0, key.output
    public = json.loads(key.output)["public_key"]
    assert all(a.verifies_with(public) for a in anchors)

    clean = cli(anchored, monkeypatch, "audit", "verify", "--anchors", str(tmp_path / "anchors"))
    assert clean.exit_code == 0, clean.output
    assert "signed anchors matched" in clean.output

    anchored.run(rewrite_and_rehash(anchored, 3, "nothing to see here"))
    plain = cli(anchored, monkeypatch, "audit", "verify")
    assert plain.exit_code == 1, "the re-hashed chain is consistent, but not the latest anchor"
    assert "was rewritten" in plain.output
    caught = cli(
        anchored, monkeypatch, "audit", "verify", "--anchors", str(tmp_path / "anchors"), "--json"
    )
    assert caught.exit_code == 1, caught.output
    report = json.loads(caught.output)
    assert report["intact"] is False
    assert "was rewritten" in report["first_break"]["problem"]

    forged = Anchor(
        anchors[-1].seq, "f" * 64, anchors[-1].ts, anchors[-1].key_id, anchors[-1].signature
    )
    (tmp_path / "anchors" / "forged.json").write_bytes(forged.to_json())
    (tmp_path / "anchors2").mkdir()
    (tmp_path / "anchors2" / "anchors").mkdir()
    (tmp_path / "anchors2" / "anchors" / "forged.json").write_bytes(forged.to_json())
    unsigned = cli(
        anchored, monkeypatch, "audit", "verify", "--anchors", str(tmp_path / "anchors2"), "--json"
    )
    assert unsigned.exit_code == 1
    assert json.loads(unsigned.output)["forged_anchors"] == ["anchors/forged.json"]


async def cut_tail(server: RunningTether, keep: int) -> None:
    """What an attacker with the database does to hide the newest events: delete them
    and move the chain head back, so what is left chains up."""
    async with server.runtime.db.write() as conn:
        await conn.execute(text("UPDATE audit_chain SET seq = seq WHERE id = 1"))
        last = (
            await conn.execute(text("SELECT hash FROM audit_events WHERE seq = :s"), {"s": keep})
        ).scalar_one()
        await conn.execute(text("DELETE FROM audit_events WHERE seq > :s"), {"s": keep})
        await conn.execute(
            text("UPDATE audit_chain SET seq = :s, hash = :h WHERE id = 1"), {"s": keep, "h": last}
        )


def test_plain_verify_checks_the_latest_anchor_and_finds_a_cut_tail(
    anchored: RunningTether, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    traffic(anchored)
    wait_for_anchor(anchored, tmp_path / "anchors")
    newest = max(a.seq for a in anchors_in(tmp_path / "anchors"))
    clean = cli(anchored, monkeypatch, "audit", "verify")
    assert clean.exit_code == 0, clean.output
    assert f"the latest signed anchor (#{newest}," in clean.output
    assert f"covers #1..#{newest}" in clean.output
    report = json.loads(cli(anchored, monkeypatch, "audit", "verify", "--json").output)
    assert report["anchored_through"] == newest and report["latest_anchor"]["seq"] == newest

    anchored.run(cut_tail(anchored, newest - 3))
    chain_only = anchored.call("GET", "/audit/verify").json()
    assert chain_only["intact"], "what is left chains up: the chain alone cannot tell"
    cut = cli(anchored, monkeypatch, "audit", "verify")
    assert cut.exit_code == 1, cut.output
    # (admin calls after the cut are audited too, so the trail may have grown a little)
    assert "the trail ends at #" in cut.output
    assert f"but event #{newest} was signed in an anchor" in cut.output
    assert f"..#{newest} were cut" in cut.output


def test_plain_verify_says_when_nothing_is_anchored(
    tether: RunningTether, monkeypatch: pytest.MonkeyPatch
) -> None:
    traffic(tether, calls=1)
    plain = cli(tether, monkeypatch, "audit", "verify")
    assert plain.exit_code == 0, plain.output
    assert "not anchored" in plain.output and "TETHER_AUDIT_ANCHOR_DEST" in plain.output


def test_prune_needs_a_verified_export_and_leaves_the_rest_verifiable(
    anchored: RunningTether, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    traffic(anchored, calls=4)
    archive = tmp_path / "archive"
    refused = cli(
        anchored,
        monkeypatch,
        "audit",
        "prune",
        "--before",
        "2999-01-01T00:00:00Z",
        "--export",
        str(archive),
    )
    assert refused.exit_code == 1 and "does not verify" in refused.output

    cut_at = time.time()
    time.sleep(0.05)
    first = cli(anchored, monkeypatch, "audit", "export", "--dest", str(archive), "--json")
    assert first.exit_code == 0, first.output
    exported = json.loads(first.output)
    files = sorted(archive.rglob("*.jsonl.gz"))
    assert files and all(f.relative_to(archive).parts[0] == "events" for f in files)
    assert len(gzip.decompress(files[0].read_bytes()).splitlines()) == exported["events"]
    again = cli(anchored, monkeypatch, "audit", "export", "--dest", str(archive), "--json")
    assert json.loads(again.output)["events"] == 1, "only what is new (the last export's audit)"
    anchored.create_project("later")

    before = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cut_at))
    before += f".{int(cut_at * 1000) % 1000:03d}Z"
    pruned = cli(
        anchored,
        monkeypatch,
        "audit",
        "prune",
        "--before",
        before,
        "--export",
        str(archive),
        "--json",
    )
    assert pruned.exit_code == 0, pruned.output
    result = json.loads(pruned.output)
    assert result["pruned_through"] == exported["events"], "all exported before the cut"
    assert result["anchor"]["reason"] == "prune"
    remaining = anchored.call("GET", "/audit", params={"limit": "1"}).json()
    assert remaining[0]["seq"] == result["pruned_through"] + 1

    live = cli(anchored, monkeypatch, "audit", "verify")
    assert live.exit_code == 0, live.output
    assert "pruned" in live.output
    cli(anchored, monkeypatch, "audit", "export", "--dest", str(archive))
    anchored_live = cli(anchored, monkeypatch, "audit", "verify", "--anchors", str(archive))
    assert anchored_live.exit_code == 0, anchored_live.output
    whole_archive = cli(
        anchored,
        monkeypatch,
        "audit",
        "verify",
        "--anchors",
        str(archive),
        "--archive",
        str(archive),
    )
    assert whole_archive.exit_code == 0, whole_archive.output

    elsewhere = tmp_path / "elsewhere"
    unanchored = cli(
        anchored, monkeypatch, "audit", "verify", "--anchors", str(elsewhere), "--json"
    )
    assert unanchored.exit_code == 1
    assert "not anchored" in json.loads(unanchored.output)["first_break"]["problem"]


def test_anchors_go_to_s3_under_the_buckets_object_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.aws import MOTO_KEY, moto_client, running_moto

    with running_moto() as moto_url:
        s3 = moto_client(moto_url, "s3")
        s3.create_bucket(Bucket="trail", ObjectLockEnabledForBucket=True)
        s3.put_object_lock_configuration(
            Bucket="trail",
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
            },
        )
        for name, value in (
            ("AWS_ENDPOINT_URL", moto_url),
            ("AWS_ACCESS_KEY_ID", MOTO_KEY[0]),
            ("AWS_SECRET_ACCESS_KEY", MOTO_KEY[1]),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ):
            monkeypatch.setenv(name, value)
        server = start_tether(
            tmp_path / "data",
            f"sqlite+aiosqlite:///{tmp_path / 'tether.db'}",
            audit_anchor_every=0.1,
            audit_anchor_dest="s3://trail/tether",
        )
        try:
            traffic(server, calls=2)
            deadline = time.monotonic() + 10
            while not s3.list_objects_v2(Bucket="trail", Prefix="tether/anchors/").get("Contents"):
                assert time.monotonic() < deadline, "no anchor reached S3"
                time.sleep(0.05)
            key = s3.list_objects_v2(Bucket="trail", Prefix="tether/anchors/")["Contents"][0]["Key"]
            held = s3.head_object(Bucket="trail", Key=key)
            assert held["ObjectLockMode"] == "COMPLIANCE"
            verified = cli(server, monkeypatch, "audit", "verify", "--anchors", "s3://trail/tether")
            assert verified.exit_code == 0, verified.output
        finally:
            server.stop()
