"""A request sent whole over a plain socket, its answer read later: lets a test ask other
things of the server while that request is being handled."""

from __future__ import annotations

import socket


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
