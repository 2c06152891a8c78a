"""Unauthenticated and slow clients cannot tie up tether: a bad key is refused from the
headers before any body is read, slow headers and bodies are cut off, open connections
are capped, and a flood of bad keys is counted without flooding the audit chain."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.databases import sqlite_url
from tests.support.server import RunningTether, start_tether

BODY_BYTES = 30 * 1024 * 1024
DOORS = ("/v1/messages", "/v1/authorize", "/hooks/claude-code")


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[RunningTether]:
    """A tether with short read deadlines and a small connection cap."""
    server = start_tether(
        tmp_path / "data",
        sqlite_url(str(tmp_path)),
        header_timeout=1,
        body_timeout=1,
        max_connections=8,
        metrics_token="scrape",
    )
    yield server
    server.stop()


def _connect(tether: RunningTether) -> socket.socket:
    port = int(tether.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def _head(path: str, key: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: tether\r\nx-api-key: {key}\r\n"
        f"anthropic-version: 2023-06-01\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("path", DOORS)
def test_a_bogus_key_is_refused_before_its_30_mb_body_is_sent(
    tether: RunningTether, path: str
) -> None:
    with _connect(tether) as sock:
        sock.sendall(_head(path, "tth_bogus_key_for_a_big_body", BODY_BYTES))
        sock.sendall(b"[" + b" " * 65_535)
        sock.settimeout(10)
        answer = sock.recv(4096)
    status = answer.split(b"\r\n", 1)[0]
    expected = b"200" if path == "/hooks/claude-code" else b"401"
    assert expected in status, answer[:300]
    assert b"not valid" in answer


def test_slow_headers_and_slow_bodies_are_cut_off(strict: RunningTether) -> None:
    with _connect(strict) as sock:
        sock.sendall(b"POST /v1/authorize HTTP/1.1\r\nHost: tether\r\n")
        closed = False
        for n in range(40):
            try:
                sock.sendall(f"x-slow-{n}: {n}\r\n".encode())
            except OSError:
                closed = True
                break
            sock.settimeout(0.25)
            try:
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except ConnectionResetError:  # cut with headers of ours still unread: a reset
                closed = True
                break
        assert closed, "a client trickling its headers for 10 s was never dropped"

    strict.create_project("p")
    key = strict.create_agent("a", "p")
    with _connect(strict) as sock:
        sock.sendall(_head("/v1/authorize", key, 1000) + b'{"action": ')
        sock.settimeout(10)
        answer = sock.recv(4096)
    assert b" 408 " in answer.split(b"\r\n", 1)[0], answer[:300]
    assert b"request_timeout" in answer


def test_open_connections_are_capped(strict: RunningTether) -> None:
    held = [_connect(strict) for _ in range(8)]
    try:
        time.sleep(0.2)
        with _connect(strict) as extra:
            extra.settimeout(10)
            answer = extra.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503") and b"too_many_connections" in answer
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"{strict.url}/healthz").status_code == 200


def test_a_thousand_bad_keys_are_counted_not_chained_one_by_one(strict: RunningTether) -> None:
    with httpx.Client(base_url=strict.url, timeout=30) as client:
        for n in range(1000):
            refused = client.post(
                "/v1/authorize",
                json={"action": "s3:GetObject", "resource": "arn:aws:s3:::b"},
                headers={"Authorization": f"Bearer tth_guess_{n:04d}"},
            )
            assert refused.status_code == 401
        metrics = client.get("/metrics", headers={"Authorization": "Bearer scrape"}).text
    counted = [
        line
        for line in metrics.splitlines()
        if line.startswith("tether_unauthenticated_refusals_total{")
    ]
    assert counted == [
        'tether_unauthenticated_refusals_total{code="invalid_key",door="authorize"} 1000.0'
    ]
    events = strict.call("GET", "/audit", params={"action": "auth:refused"}).json()
    assert 1 <= len(events) <= 3
    assert sum(e["attributes"]["refused"] for e in events) <= 1000
    assert all("tth_guess" not in str(e) for e in events)


@pytest.mark.parametrize("path", ("/v1/messages", "/v1/authorize"))
def test_a_body_over_the_limit_that_arrived_whole_is_refused(tmp_path: Path, path: str) -> None:
    """Chunked, so no length is declared; it comes in one write with its headers, so it is
    all there before tether reads it: still measured, still refused."""
    server = start_tether(
        tmp_path / "data", sqlite_url(str(tmp_path)), max_body_bytes=4096, max_message_bytes=4096
    )
    try:
        server.create_project("p")
        key = server.create_agent("a", "p")
        payload = b'{"action": "x", "resource": "' + b"y" * 6000 + b'"}'
        head = (
            f"POST {path} HTTP/1.1\r\nHost: tether\r\nx-api-key: {key}\r\n"
            "anthropic-version: 2023-06-01\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
        ).encode()
        chunked = f"{len(payload):x}\r\n".encode() + payload + b"\r\n0\r\n\r\n"
        with _connect(server) as sock:
            sock.sendall(head + chunked)
            sock.settimeout(10)
            answer = sock.recv(4096)
        assert b" 413 " in answer.split(b"\r\n", 1)[0], answer[:300]
        assert b"payload_too_large" in answer and b"4096" in answer
    finally:
        server.stop()


def test_a_silent_connection_is_closed_at_its_header_deadline_and_a_busy_one_is_not(
    strict: RunningTether,
) -> None:
    """One sweep each quarter of the deadline (1 s here) keeps every connection's: one that
    never sends its head is closed within 1.25 deadlines, one that sends a request every
    0.3 s for 2.5 deadlines is never cut."""
    with _connect(strict) as silent:
        opened = time.monotonic()
        readable, _, _ = select.select([silent], [], [], 5)
        waited = time.monotonic() - opened
        assert readable and silent.recv(1024) == b""
    assert 0.9 <= waited <= 2.0, waited

    with _connect(strict) as busy:
        opened = time.monotonic()
        answered = 0
        while time.monotonic() - opened < 2.5:
            busy.sendall(b"GET /healthz HTTP/1.1\r\nHost: tether\r\n\r\n")
            assert b" 200 " in busy.recv(4096).split(b"\r\n", 1)[0]
            answered += 1
            time.sleep(0.3)
    assert answered >= 3
