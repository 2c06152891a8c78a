"""Fail closed: with the database unreachable, /v1/authorize denies with a clear 503."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.databases import PG_HOST, PG_PORT, postgres_database
from tests.support.server import RunningTether, start_tether
from tests.support.tcp_proxy import CuttableProxy


@pytest.fixture
def proxied_tether(tmp_path: Path) -> Iterator[tuple[RunningTether, CuttableProxy]]:
    proxy = CuttableProxy(PG_HOST, PG_PORT).start()
    with postgres_database() as url:
        proxied_url = url.replace(f":{PG_PORT}/", f":{proxy.port}/")
        server = start_tether(tmp_path / "data", proxied_url)
        try:
            yield server, proxy
        finally:
            proxy.restore()
            server.stop()
            proxy.close()


def test_database_down_means_503_deny_never_allow(
    proxied_tether: tuple[RunningTether, CuttableProxy],
) -> None:
    tether, proxy = proxied_tether
    tether.create_project("p")
    key = tether.create_agent("a", "p")
    headers = {"Authorization": f"Bearer {key}"}
    body = {"session_id": "known", "action": "s3:PutObject", "resource": "arn:aws:s3:::prod"}
    assert httpx.post(f"{tether.url}/v1/authorize", json=body, headers=headers).status_code == 200

    proxy.cut()
    for session_id in ["known", "brand-new"]:
        response = httpx.post(
            f"{tether.url}/v1/authorize",
            json={**body, "session_id": session_id},
            headers=headers,
            timeout=30,
        )
        assert response.status_code == 503, response.text
        payload = response.json()
        assert payload["decision"] == "deny"
        assert payload["error"]["code"] in {"audit_unavailable", "store_unavailable"}
        assert "database" in payload["error"]["message"] or "audit" in payload["error"]["message"]
        assert "Traceback" not in response.text

    admin = tether.call("GET", "/projects")
    assert admin.status_code == 503

    proxy.restore()
    recovered = None
    for _ in range(20):
        recovered = httpx.post(f"{tether.url}/v1/authorize", json=body, headers=headers, timeout=30)
        if recovered.status_code == 200:
            break
    assert recovered is not None and recovered.status_code == 200
