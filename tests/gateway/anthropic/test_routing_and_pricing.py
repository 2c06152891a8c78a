"""Per-project upstreams, session-id precedence, and operator price overrides."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.databases import sqlite_url
from tests.support.fake_upstream import RunningFake, start_fake
from tests.support.server import RunningTether, start_tether
from tether.fakes.anthropic import FakeAnthropic, FakeReply

BODY = {"model": "claude-opus-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}


def call(
    tether: RunningTether, key: str, body: dict | None = None, **headers: str
) -> httpx.Response:
    return httpx.post(
        f"{tether.url}/v1/messages",
        json=body or BODY,
        headers={"x-api-key": key, "anthropic-version": "2023-06-01", **headers},
    )


def test_a_project_can_use_its_own_upstream(gateway: RunningTether, upstream: RunningFake) -> None:
    other = start_fake(FakeAnthropic(api_key="sk-ant-second-upstream"))
    try:
        gateway.create_project("eu")
        gateway.call(
            "PUT", "/projects/eu/credentials/anthropic", json={"secret": "sk-ant-second-upstream"}
        )
        updated = gateway.call("PATCH", "/projects/eu", json={"upstream_base_url": other.url})
        assert updated.status_code == 200 and updated.json()["upstream_base_url"] == other.url
        eu_key = gateway.create_agent("eu-agent", "eu")
        default_key = gateway.create_agent("default-agent", "p")

        assert call(gateway, eu_key).status_code == 200
        assert call(gateway, default_key).status_code == 200
        assert len(other.fake.received) == 1
        assert len(upstream.fake.received) == 1
        assert other.fake.received[0].headers["x-api-key"] == "sk-ant-second-upstream"
    finally:
        other.stop()


def test_bad_upstream_url_is_rejected(gateway: RunningTether) -> None:
    response = gateway.call("PATCH", "/projects/p", json={"upstream_base_url": "ftp://nope"})
    assert response.status_code == 400
    assert "upstream_base_url" in response.json()["error"]["message"]


def test_claude_code_session_header_wins_over_tethers(gateway: RunningTether) -> None:
    key = gateway.create_agent("a", "p")
    response = call(gateway, key, **{"X-Claude-Code-Session-Id": "cc", "X-Tether-Session-Id": "tt"})
    assert response.headers["tether-session-id"] == "cc"
    generated = call(gateway, key).headers["tether-session-id"]
    assert generated and generated not in ("cc", "tt")


def test_price_overrides_from_a_file(tmp_path: Path, upstream: RunningFake) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {
                "models": {"claude-opus-5": {"input": 100, "output": 1000}},
                "fallback": {"input": 1, "output": 2},
            }
        )
    )
    server = start_tether(
        tmp_path / "d",
        sqlite_url(str(tmp_path)),
        anthropic_base_url=upstream.url,
        prices_file=prices,
    )
    try:
        server.create_project("p", upstream.fake.api_key)
        key = server.create_agent("a", "p")
        upstream.fake.enqueue(
            FakeReply(input_tokens=10_000, output_tokens=1_000, cache_read_input_tokens=100_000)
        )
        priced = {**BODY, "max_tokens": 1000}
        assert (
            call(server, key, body=priced, **{"X-Tether-Session-Id": "priced"}).status_code == 200
        )
        completion = _completion(server, "priced")
        expected = (10_000 * 100 + 1_000 * 1000 + 100_000 * 100 * 0.1) / 1_000_000
        assert completion["attributes"]["cost_usd"] == pytest.approx(expected)
    finally:
        server.stop()


def test_a_broken_price_file_stops_start_up_with_the_key_named(tmp_path: Path) -> None:
    from tether.errors import ConfigError

    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"models": {"claude-x": {"input": "cheap", "output": 1}}}))
    with pytest.raises(ConfigError, match=r"claude-x\.input"):
        start_tether(tmp_path / "d", sqlite_url(str(tmp_path)), prices_file=prices)


def _completion(server: RunningTether, session: str) -> dict:
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        events = server.call("GET", "/audit", params={"session": session}).json()
        done = [e for e in events if e["action"].endswith(":completed")]
        if done:
            return done[0]
        time.sleep(0.05)
    raise AssertionError("no completion event")
