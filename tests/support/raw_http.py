"""A request sent whole over a plain socket, its answer read later: lets a test ask other
things of the server while that request is being handled."""

from __future__ import annotations

import select
import socket
import time

import httpx


def post_whole(url: str, path: str, key: str, body: bytes) -> socket.socket:
    """Sends ``POST path`` with ``body`` and returns the socket its answer will arrive on."""
    host, port = url.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=60)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    conn.sendall(head.encode() + body)
    return conn


def read_answer(conn: socket.socket) -> bytes:
    """The whole answer, head and body, once the server closes the connection."""
    chunks = []
    while chunk := conn.recv(65_536):
        chunks.append(chunk)
    conn.close()
    return b"".join(chunks)


def healthz_while_answered(
    url: str, path: str, key: str, body: bytes, copies: int = 4
) -> tuple[int, list[socket.socket]]:
    """Sends ``copies`` of ``body`` whole, then asks ``/healthz`` again and again until all
    their answers have arrived: how many times ``/healthz`` answered while none had, and
    the sockets to read the answers from."""
    answered_in_flight = 0
    with httpx.Client(base_url=url, timeout=60) as probe:
        probe.get("/healthz").raise_for_status()  # the probe's connection is open
        heavy = [post_whole(url, path, key, body) for _ in range(copies)]
        while True:
            probe.get("/healthz").raise_for_status()
            ready, _, _ = select.select(heavy, [], [], 0)
            if len(ready) == len(heavy):
                return answered_in_flight, heavy
            if not ready:
                answered_in_flight += 1  # none of them answered yet
            time.sleep(0.002)
