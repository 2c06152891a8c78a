"""JSON nested past any sane depth answers a clear 400 on every route that reads JSON
(the front doors and every admin route with a body), never a 500 with a traceback."""

from __future__ import annotations

import re

import httpx

from tests.support.server import RunningTether

DEEP_ARRAYS = b"[" * 100_000
PATH_VALUES = {"provider": "anthropic"}
DEEP_OBJECTS = b'{"a":' * 50_000 + b"1" + b"}" * 50_000


def _json_routes(tether: RunningTether) -> list[tuple[str, str]]:
    """Every route that takes a JSON body, admin ones as the OpenAPI document lists them."""
    spec = httpx.get(f"{tether.url}/admin/v1/openapi.json").json()
    admin = [
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]
    assert len(admin) >= 10
    front = [
        ("POST", "/v1/authorize"),
        ("POST", "/hooks/claude-code"),
        ("POST", "/v1/messages"),
        ("POST", "/v1/messages/count_tokens"),
    ]
    return front + admin


def test_deeply_nested_json_is_a_clear_400_everywhere(tether: RunningTether) -> None:
    tether.create_project("p")
    key = tether.create_agent("p", "p")
    routes = _json_routes(tether)
    with httpx.Client(base_url=tether.url, timeout=30) as client:
        for method, path in routes:
            token = tether.admin_token if path.startswith("/admin/") else key
            url = re.sub(r"{(\w+)}", lambda m: PATH_VALUES.get(m.group(1), "p"), path)
            for body in (DEEP_ARRAYS, DEEP_OBJECTS):
                answer = client.request(
                    method,
                    url,
                    content=body,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/json",
                        "anthropic-version": "2023-06-01",
                    },
                )
                text = answer.text
                assert "Traceback" not in text
                if answer.status_code == 404 and "{" in path:
                    continue  # an id route whose record does not exist: refused before the body
                assert answer.status_code == 400, (method, path, answer.status_code, text)
                assert "not valid JSON" in text and "depth" in text, (method, path, text)
