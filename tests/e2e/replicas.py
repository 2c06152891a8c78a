"""Two real ``tether up`` processes sharing one PostgreSQL database and master key."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.e2e.test_tether_up import free_port, start, stop
from tests.support.databases import postgres_database

ADMIN = "tta_e2e_replica_admin_token_0123456789"


@dataclass
class Replicas:
    first: str
    second: str
    admin: httpx.Client
    """Admin API of the first process."""


@contextmanager
def two_processes(tmp_path: Path, **env: str) -> Iterator[Replicas]:
    master_key = base64.b64encode(os.urandom(32)).decode()
    with postgres_database() as url:
        base_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
            "TETHER_DATABASE_URL": url,
            "TETHER_MASTER_KEY": master_key,
            "TETHER_ADMIN_TOKEN": ADMIN,
            **env,
        }
        ports = [free_port(), free_port()]
        # Started together, as a deploy starts its replicas (migrations are safe at once).
        with ThreadPoolExecutor(2) as pool:
            starts = [
                pool.submit(start, {**base_env, "TETHER_DATA_DIR": str(tmp_path / at)}, port)
                for at, port in zip("ab", ports, strict=True)
            ]
        failed = [error for f in starts if (error := f.exception()) is not None]
        if failed:
            for started in (f.result()[0] for f in starts if f.exception() is None):
                stop(started)
            raise failed[0]
        first, second = (f.result()[0] for f in starts)
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        admin = httpx.Client(
            base_url=f"{urls[0]}/admin/v1", headers={"Authorization": f"Bearer {ADMIN}"}
        )
        try:
            yield Replicas(urls[0], urls[1], admin)
        finally:
            admin.close()
            assert stop(first) == 0
            assert stop(second) == 0


def first_refusal(
    url: str, body: dict[str, object], headers: dict[str, str], within: float = 1.0
) -> tuple[httpx.Response, float]:
    """Send ``body`` until it is refused (or ``within`` seconds pass); the last answer and
    how long after the call the refusal came."""
    started = time.monotonic()
    while True:
        response = httpx.post(url, json=body, headers=headers)
        elapsed = time.monotonic() - started
        if response.status_code != 200 or elapsed > within:
            return response, elapsed
        time.sleep(0.02)
