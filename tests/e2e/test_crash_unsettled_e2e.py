"""kill -9 of a real ``tether up`` with calls running and a budget lease held: what the dead
process reserved becomes unsettled — still counted against the limit, not spent, shown
apart — and an operator settles it with ``tether budgets settle``, audited. On SQLite and
PostgreSQL (a reservation per call is covered in ``tests/store/test_budget_ledger.py``)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import anthropic
import httpx
import orjson
import pytest

from tests.e2e.test_tether_up import cli, free_port, start
from tests.support.fake_upstream import RunningFake
from tether.fakes.anthropic import FakeReply

ADMIN = "tta_crash-unsettled-admin-token-0123456789"
LIMIT = 1_000_000
HANGING = 5
HOLD_SECONDS = 3
REAP_SECONDS = HOLD_SECONDS / 2
"""How often ``tether up`` marks expired holds unsettled (half the hold, ``runtime.py``)."""


def _daily(admin: httpx.Client) -> dict:
    return next(b for b in admin.get("/budgets").json() if b["period"] == "daily")


def test_a_crash_leaves_reservations_unsettled_not_spent(
    tmp_path: Path, database_url: str, upstream: RunningFake
) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
        "TETHER_DATA_DIR": str(tmp_path / "data"),
        "TETHER_DATABASE_URL": database_url,
        "TETHER_ADMIN_TOKEN": ADMIN,
        "TETHER_URL": f"http://127.0.0.1:{port}",
        "TETHER_ANTHROPIC_BASE_URL": upstream.url,
        "TETHER_BUDGET_HOLD_SECONDS": str(HOLD_SECONDS),
    }
    url = f"http://127.0.0.1:{port}"
    admin = httpx.Client(base_url=f"{url}/admin/v1", headers={"Authorization": f"Bearer {ADMIN}"})
    process, _ = start(env, port)
    try:
        admin.post("/projects", json={"name": "p"}).raise_for_status()
        admin.put(
            "/projects/p/credentials/anthropic", json={"secret": upstream.fake.api_key}
        ).raise_for_status()
        key = admin.post("/agents", json={"name": "a", "project": "p"}).json()["key"]
        admin.put(
            "/budgets", json={"project": "p", "period": "daily", "limit_usd": LIMIT}
        ).raise_for_status()
        client = anthropic.Anthropic(api_key=key, base_url=url, max_retries=0, timeout=30)
        upstream.fake.default = FakeReply(output_tokens=2000)
        for n in range(3):
            client.messages.create(
                model="claude-sonnet-5",
                max_tokens=4000,
                messages=[{"role": "user", "content": f"done {n}"}],
            )
        time.sleep(1.5)  # leases write back what was spent about once a second
        real = _daily(admin)["spent_usd"]
        assert 0 < real < 1

        upstream.fake.default = FakeReply(output_tokens=4000, chunks=4, chunk_delay=8)

        def hang(n: int) -> None:
            with (
                contextlib.suppress(Exception),  # the process is killed under it
                client.messages.stream(
                    model="claude-sonnet-5",
                    max_tokens=8000,
                    messages=[{"role": "user", "content": f"hang {n}"}],
                ) as stream,
            ):
                for _ in stream:
                    pass

        threads = [threading.Thread(target=hang, args=(n,), daemon=True) for n in range(HANGING)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 15
        while _daily(admin)["reserved_usd"] == 0 or len(upstream.fake.received) < 3 + HANGING:
            assert time.monotonic() < deadline, "the hanging calls never reserved"
            time.sleep(0.05)
        process.kill()  # kill -9: nothing is settled, nothing given back
        killed_at = time.monotonic()
        process.wait(10)
        client.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()

    process, _ = start(env, port)
    try:
        deadline = time.monotonic() + HOLD_SECONDS + 10
        # the dead process's holds expire at different times (each HOLD_SECONDS after it
        # was last renewed), and the reaper marks the expired ones each REAP_SECONDS: all
        # are marked once the last has expired and a pass has run since
        all_marked_at = killed_at + HOLD_SECONDS + REAP_SECONDS + 0.5
        while (state := _daily(admin))["unsettled_usd"] == 0 or time.monotonic() < all_marked_at:
            assert time.monotonic() < deadline, f"nothing became unsettled: {state}"
            time.sleep(0.2)
        # threshold alerts follow ``spent``: a crash is not spend, so none fires for it
        assert state["spent_usd"] == pytest.approx(real, abs=1e-6), "a crash is not spend"
        assert state["reserved_usd"] == 0, "nothing of the dead process is live"
        unsettled = state["unsettled_usd"]
        assert state["remaining_usd"] == pytest.approx(LIMIT - real - unsettled, abs=1e-6), (
            "unsettled still counts against the limit"
        )
        events = admin.get("/audit", params={"action": "budget:unsettled"}).json()
        assert events and {e["result"] for e in events} == {"unsettled"}

        (listed,) = [
            b
            for b in orjson.loads(cli(env, "budgets", "list", "--json").stdout)
            if b["period"] == "daily"
        ]
        assert listed["unsettled_usd"] == unsettled
        holds = orjson.loads(cli(env, "budgets", "unsettled", "-p", "p", "--json").stdout)
        mine = [h for h in holds if h["budget_id"] == listed["id"]]
        assert sum(h["reserved_usd"] for h in mine) == pytest.approx(unsettled, abs=1e-6)
        spend = cli(env, "spend")
        assert "unsettled, not in the spend above" in spend.stdout, spend
        settled = cli(env, "budgets", "settle", "--all-unsettled", "-p", "p", "--usd", "0")
        assert settled.returncode == 0, settled.stderr

        state = _daily(admin)
        assert state["unsettled_usd"] == 0 and state["reserved_usd"] == 0
        assert state["spent_usd"] == pytest.approx(real, abs=1e-6)
        assert state["remaining_usd"] == pytest.approx(LIMIT - real, abs=1e-6)
        marks = admin.get("/audit", params={"action": "budget:settled"}).json()
        assert len(marks) == len(events)
        assert all(e["actor"] == "admin:bootstrap" for e in marks)
        assert all(e["attributes"]["charged_usd"] == 0 for e in marks)
        again = cli(env, "budgets", "settle", "nope", "-p", "p", "--usd", "1")
        assert again.returncode != 0 and "no unsettled reservation" in again.stderr
    finally:
        process.terminate()
        process.wait(20)
        if process.stdout is not None:
            process.stdout.close()
        admin.close()
