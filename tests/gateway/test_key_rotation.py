"""The classic case: 8 agents running; rotate or revoke one; the other 7 see zero failures."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.support.server import RunningTether

AGENTS = [f"claude-worker-{i:02d}" for i in range(8)]


class Fleet:
    """Eight agents sending authorize requests concurrently until told to stop."""

    def __init__(self, tether: RunningTether, keys: dict[str, str]) -> None:
        self.tether = tether
        self.keys = dict(keys)
        self.results: dict[str, list[tuple[float, float, int, str]]] = {name: [] for name in keys}
        self.stop = asyncio.Event()

    async def agent_loop(self, client: httpx.AsyncClient, name: str) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            sent = time.monotonic()
            response = await client.post(
                "/v1/authorize",
                json={"session_id": f"{name}-s", "action": "s3:GetObject", "resource": f"r{n}"},
                headers={"Authorization": f"Bearer {self.keys[name]}"},
            )
            code = response.json().get("error", {}).get("code", "")
            self.results[name].append((sent, time.monotonic(), response.status_code, code))
            await asyncio.sleep(0.005)

    async def run_while(self, action) -> None:
        async with httpx.AsyncClient(base_url=self.tether.url, timeout=30) as client:
            loops = [asyncio.create_task(self.agent_loop(client, n)) for n in self.keys]
            deadline = time.monotonic() + 10
            while min(len(r) for r in self.results.values()) < 3:
                assert time.monotonic() < deadline, "the fleet did not get going"
                await asyncio.sleep(0.02)
            await asyncio.to_thread(action)
            await asyncio.sleep(0.5)
            self.stop.set()
            await asyncio.gather(*loops)

    def failures(self, name: str) -> list[tuple[float, float, int, str]]:
        return [r for r in self.results[name] if r[2] != 200]

    def sent_after(self, name: str, moment: float) -> list[tuple[int, str]]:
        return [(status, code) for sent, _, status, code in self.results[name] if sent > moment]

    def answered_before(self, name: str, moment: float) -> list[tuple[int, str]]:
        return [(status, code) for _, got, status, code in self.results[name] if got < moment]


@pytest.fixture
def fleet_keys(tether_any: RunningTether) -> dict[str, str]:
    tether_any.create_project("fleet")
    return {name: tether_any.create_agent(name, "fleet") for name in AGENTS}


def test_rotation_without_grace_touches_no_other_agent(
    tether_any: RunningTether, fleet_keys: dict[str, str]
) -> None:
    fleet = Fleet(tether_any, fleet_keys)
    target = AGENTS[3]
    rotated: dict[str, object] = {}

    def rotate() -> None:
        rotated["at"] = time.monotonic()
        response = tether_any.call(
            "POST", f"/agents/{target}/keys/rotate", json={"grace_seconds": 0}
        )
        assert response.status_code == 201, response.text
        rotated["key"] = response.json()["key"]
        rotated["done"] = time.monotonic()

    asyncio.run(fleet.run_while(rotate))

    for name in AGENTS:
        assert len(fleet.results[name]) > 5, name
        if name != target:
            assert fleet.failures(name) == [], (name, fleet.failures(name))
    after = fleet.sent_after(target, rotated["done"])  # type: ignore[arg-type]
    assert after and set(after) == {(401, "expired_key")}, after
    before = fleet.answered_before(target, rotated["at"])  # type: ignore[arg-type]
    assert before and {status for status, _ in before} == {200}, before

    new_key = rotated["key"]
    response = httpx.post(
        f"{tether_any.url}/v1/authorize",
        json={"action": "s3:GetObject", "resource": "r"},
        headers={"Authorization": f"Bearer {new_key}"},
    )
    assert response.status_code == 200
    assert response.json()["agent"] == target


def test_rotation_with_grace_keeps_the_old_key_until_it_expires(
    tether_any: RunningTether, fleet_keys: dict[str, str]
) -> None:
    fleet = Fleet(tether_any, fleet_keys)
    target = AGENTS[5]

    def rotate() -> None:
        response = tether_any.call(
            "POST", f"/agents/{target}/keys/rotate", json={"grace_seconds": 2}
        )
        assert response.status_code == 201

    asyncio.run(fleet.run_while(rotate))
    for name in AGENTS:
        assert fleet.failures(name) == [], (name, fleet.failures(name))

    old_key = fleet_keys[target]
    body = {"action": "s3:GetObject", "resource": "r"}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        response = httpx.post(
            f"{tether_any.url}/v1/authorize", json=body, headers={"x-api-key": old_key}
        )
        if response.status_code != 200:
            break
        time.sleep(0.1)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "expired_key"


def test_revoking_one_agent_touches_no_other(
    tether_any: RunningTether, fleet_keys: dict[str, str]
) -> None:
    fleet = Fleet(tether_any, fleet_keys)
    target = AGENTS[6]
    revoked: dict[str, float] = {}

    def revoke() -> None:
        assert tether_any.call("POST", f"/agents/{target}/revoke").status_code == 200
        revoked["done"] = time.monotonic()

    asyncio.run(fleet.run_while(revoke))
    for name in AGENTS:
        if name != target:
            assert fleet.failures(name) == [], (name, fleet.failures(name))
    after = fleet.sent_after(target, revoked["done"])
    assert after and set(after) == {(401, "revoked_key")}, after


def test_a_second_rotation_does_not_lengthen_the_first_keys_grace(
    tether_any: RunningTether,
) -> None:
    """A leaked key is rotated with a minute's grace (here 2 s); the next rotation, with a
    day's, must leave it to end when it was due: it set every live key's end to its own."""
    tether_any.create_project("leak")
    leaked = tether_any.create_agent("leaky", "leak")
    for grace in (2, 86_400):
        rotated = tether_any.call(
            "POST", "/agents/leaky/keys/rotate", json={"grace_seconds": grace}
        )
        assert rotated.status_code == 201, rotated.text
    deadline = time.monotonic() + 10
    body = {"action": "s3:GetObject", "resource": "r"}
    while (answer := _authorize(tether_any, leaked, body)).status_code == 200:
        assert time.monotonic() < deadline, "the leaked key still works a day later"
        time.sleep(0.2)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "expired_key"


def _authorize(tether: RunningTether, key: str, body: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{tether.url}/v1/authorize", json=body, headers={"x-api-key": key})
