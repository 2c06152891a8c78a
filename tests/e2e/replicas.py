"""Two real ``tether up`` processes sharing one PostgreSQL database and master key."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterator
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
        first, _ = start({**base_env, "TETHER_DATA_DIR": str(tmp_path / "a")}, ports[0])
        second, _ = start({**base_env, "TETHER_DATA_DIR": str(tmp_path / "b")}, ports[1])
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
