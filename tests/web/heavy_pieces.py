"""Pieces for the heavy-work lane's tests, in a module of their own: a worker process
imports the module of the function it runs, and the test module imports a whole server."""

from __future__ import annotations

import os
import time


def gated_square(n: int, gate: str) -> int:
    """Appends ``n`` to ``gate/started``, then waits for ``gate/release``: n * n."""
    with open(os.path.join(gate, "started"), "a") as started:
        started.write(f"{n}\n")
    for _ in range(2_000):
        if os.path.exists(os.path.join(gate, "release")):
            return n * n
        time.sleep(0.005)
    raise TimeoutError("never released")


def fails(message: str) -> int:
    raise ValueError(message)


def square(n: int) -> int:
    return n * n


def pid() -> int:
    return os.getpid()
