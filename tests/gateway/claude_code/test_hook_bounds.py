"""The hook endpoint with the worst shell commands and with secrets in what it refuses:
a 5,000-pipe command is refused at once with ``command_too_complex`` while ``/healthz``
keeps answering, and no reason shown to the agent quotes a credential (hook denials and
``/v1/authorize`` answers alike)."""

from __future__ import annotations

import threading
import time

import httpx

from tests.gateway.claude_code.test_hooks import decision_of, hook  # noqa: F401 (fixture)
from tests.support.server import RunningTether

PASSWORD = "Sup3rSecretPassw0rd"
URL = f"postgres://admin:{PASSWORD}@db.internal:5432/prod"


def _pipes(n: int) -> str:
    return "echo a" + " | cat" * n


def test_a_long_pipeline_is_refused_at_once_and_health_keeps_answering(  # type: ignore[no-untyped-def]
    tether: RunningTether,
    hook,  # noqa: F811 (the fixture)
) -> None:
    within = hook("Bash", {"command": _pipes(90)})
    assert decision_of(within)[0] in ("allow", "deny")
    warm = hook("Bash", {"command": _pipes(300)})  # over 1 KB: starts the reading process
    assert decision_of(warm)[0] == "deny"
    health: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            httpx.get(f"{tether.url}/healthz", timeout=30).raise_for_status()
            health.append(time.perf_counter() - started)
            time.sleep(0.01)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        started = time.perf_counter()
        responses = [hook("Bash", {"command": _pipes(n)}) for n in (1_000, 5_000, 20_000)]
        elapsed = time.perf_counter() - started
    finally:
        done.set()
        prober.join()
    for response in responses:
        decision, reason = decision_of(response)
        assert decision == "deny"
        assert "tether checks" in reason, reason
    assert elapsed < 10, f"three refusals took {elapsed:.1f} s (55 s for one before)"
    assert health and max(health) < 5, max(health)
    trail = tether.call("GET", "/audit", params={"limit": 10}).json()
    assert "command_too_complex" in {e["code"] for e in trail}


def test_a_hook_denial_does_not_quote_a_password(hook) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    decision, reason = decision_of(hook("Bash", {"command": f'psql {URL} -c "drop table t"'}))
    assert decision == "deny"
    assert "postgres://admin:[redacted]@db.internal" in reason, reason
    for command in (
        f"mytool --url {URL}",
        f"curl {URL} $(cat x)",
        f"echo {URL}" + " | cat" * 200,
    ):
        decision, reason = decision_of(hook("Bash", {"command": command}))
        assert decision == "deny", reason
        assert PASSWORD not in reason, reason


def test_an_authorize_answer_does_not_quote_a_password(tether: RunningTether) -> None:
    tether.create_project(
        "p", policy='permit(principal, action == Action::"s3:GetObject", resource);'
    )
    key = tether.create_agent("a", "p")
    response = httpx.post(
        f"{tether.url}/v1/authorize",
        json={"action": "db:Query", "resource": f"{URL}/users"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 403, response.text
    assert PASSWORD not in response.text
    assert "[redacted]" in response.text
    bad = httpx.post(
        f"{tether.url}/v1/authorize",
        json={"action": "db:DropTable", "resource": 3, "note": URL},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert 400 <= bad.status_code < 500
    assert PASSWORD not in bad.text


def test_deep_json_and_huge_cedar_inputs_are_clear_4xx(tether: RunningTether) -> None:
    tether.create_project("p")
    key = tether.create_agent("a", "p")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    deep = b'{"action":"x:Y","resource":"r","context":' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    for path in ("/v1/authorize", "/hooks/claude-code"):
        answer = httpx.post(f"{tether.url}{path}", content=deep, headers=headers, timeout=30)
        assert 400 <= answer.status_code < 500, answer.text
        assert "JSON" in answer.text
    huge = httpx.post(
        f"{tether.url}/v1/authorize",
        json={"action": "s3:GetObject", "resource": "arn:" + "a" * 65_000},
        headers=headers,
        timeout=30,
    )
    assert 400 <= huge.status_code < 500, huge.text
    assert "resource" in huge.text
