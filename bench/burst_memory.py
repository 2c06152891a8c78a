"""What a burst of connections leaves in a real ``tether up``: N clients connect at once
and each sends the soak's calls (a third Claude Code, a third SDK without a session
header, a third tool loops) twice over its keep-alive connection; then they all close.
The server's RSS before (warmed until its per-session structures are full), while they
are open, after they closed, and after a second burst of the same size (does the second
reuse what the first left, or add to it?).

A stall (a paused host, a long collection) is such a burst: an open-loop fleet keeps
sending, and every call waiting holds a connection and its request.

    uv run python bench/burst_memory.py                # 250, 500 and 1,000 at once
    uv run python bench/burst_memory.py --sizes 1000 --trim   # also ask glibc back (gdb)
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from comparison.http1 import request_bytes
from comparison.processes import rss_mb
from comparison.targets import Lab, Target, start_tether, start_upstream
from soak import Agent, Fleet, request_of

SETTLE_SECONDS = 2.0
"""Time for the server to finish what a burst left (audit batches, closed connections)."""
SESSIONS_IN_MEMORY = 500
"""Small, and filled before the first burst: the bounded per-session structures are full,
so what a burst adds is what the burst itself leaves, not new sessions remembered."""
WARM_CLIENTS, WARM_ROUNDS = 200, 15


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="250,500,1000", help="clients at once (250,500,1000)")
    parser.add_argument("--trim", action="store_true", help="then call malloc_trim(0) via gdb")
    return parser.parse_args()


class Burst:
    """N raw HTTP/1.1 clients on keep-alive connections, sending the soak's calls."""

    def __init__(self, target: Target, fleet: Fleet, health_only: bool) -> None:
        self.endpoint, self.fleet, self.health_only = target.endpoint, fleet, health_only

    def open(self, clients: int) -> list[socket.socket]:
        return [
            socket.create_connection((self.endpoint.host, self.endpoint.port))
            for _ in range(clients)
        ]

    def round(self, connections: list[socket.socket]) -> None:
        """Every client sends one call, then every answer is read whole."""
        for connection in connections:
            connection.sendall(self._request())
        for connection in connections:
            _read_answer(connection)

    def _request(self) -> bytes:
        if self.health_only:
            return b"GET /healthz HTTP/1.1\r\nHost: tether\r\n\r\n"
        path, headers, body = request_of(self.fleet.next_session())
        return request_bytes(self.endpoint.host, self.endpoint.port, path, headers, body)


def _read_answer(connection: socket.socket) -> None:
    connection.settimeout(60)
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"tether refused a call of the burst: {head[:200]!r}")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)


def burst_once(burst: Burst, clients: int, pid: int) -> tuple[float, float]:
    """RSS (MiB) while ``clients`` connections are open after two calls each, and after
    they closed."""
    connections = burst.open(clients)
    try:
        burst.round(connections)
        burst.round(connections)
        time.sleep(SETTLE_SECONDS)
        open_rss = rss_mb([pid])
    finally:
        for connection in connections:
            connection.close()
    time.sleep(SETTLE_SECONDS)
    return open_rss, rss_mb([pid])


def malloc_trim(pid: int) -> None:
    subprocess.run(
        ["gdb", "-p", str(pid), "-batch", "-ex", "call (int)malloc_trim(0)"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip


def measure(clients: int, health_only: bool, trim: bool) -> str:
    """One row: a new server, warmed until its per-session structures are full."""
    with ExitStack() as stack:
        lab = Lab(Path(tempfile.mkdtemp(prefix="tether-burst-")), stack)
        stack.callback(shutil.rmtree, lab.workdir, True)
        start_upstream(lab)
        settings = {
            "TETHER_LOG_LEVEL": "WARNING",
            "TETHER_SESSIONS_IN_MEMORY": str(SESSIONS_IN_MEMORY),
        }
        target = start_tether(lab, "tether-burst", "tether", extra_env=settings)
        pid = target.pids()[0]
        fleet = Fleet([Agent("bench-agent", target.endpoint.headers["x-api-key"])])
        warming = Burst(target, fleet, health_only=False)
        warm = warming.open(WARM_CLIENTS)
        for _ in range(WARM_ROUNDS):
            warming.round(warm)
        for connection in warm:
            connection.close()
        time.sleep(SETTLE_SECONDS)
        burst = Burst(target, fleet, health_only)
        before = rss_mb([pid])
        first_open, first_closed = burst_once(burst, clients, pid)
        second_open, second_closed = burst_once(burst, clients, pid)
        trimmed = ""
        if trim:
            malloc_trim(pid)
            trimmed = f" {rss_mb([pid]) - before:+.1f} |"
        kind = "`/healthz`" if health_only else "model calls"
        return (
            f"| {kind} | {clients:,} | {before:.1f} | {first_open - before:+.1f} | "
            f"{first_closed - before:+.1f} | {second_open - before:+.1f} | "
            f"{second_closed - before:+.1f} |{trimmed}"
        )


def main() -> None:
    args = parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    header = (
        "| calls | clients at once | RSS before, MiB | open (1st) | closed (1st) | "
        "open (2nd) | closed (2nd) |" + (" after malloc_trim |" if args.trim else "")
    )
    rule = "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if args.trim else "")
    print(header + "\n" + rule, flush=True)
    rows = []
    for clients, health_only in [*((n, False) for n in sizes), (sizes[-1], True)]:
        rows.append(measure(clients, health_only, args.trim))
        print(rows[-1], flush=True)
    print("\n" + "\n".join([header, rule, *rows]))


if __name__ == "__main__":
    main()
