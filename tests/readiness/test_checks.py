"""``tether check``: each check failing on a project set up carelessly and passing on
one set up as the guidance says; exit status 1 on any fail."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.support.receiver import Receiver
from tests.support.server import RunningTether, start_tether
from tether.cli.main import app

SCOPED = 'permit(principal, action == Action::"s3:GetObject", resource);\n'


@pytest.fixture
def tether_any(tmp_path: Path, database_url: str) -> Iterator[RunningTether]:
    """A tether on each backend, keeping signed anchors as a production one should."""
    server = start_tether(
        tmp_path / "data",
        database_url,
        audit_anchor_every=1.0,
        audit_anchor_dest=str(tmp_path / "anchors"),
    )
    yield server
    server.stop()


@pytest.fixture
def cli(tether_any: RunningTether, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TETHER_URL", tether_any.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", tether_any.admin_token)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def statuses(cli: Callable[..., Any], project: str) -> tuple[int, dict[str, dict[str, str]]]:
    ran = cli("check", "-p", project, "--json")
    [report] = json.loads(ran.output)
    return ran.exit_code, {c["check"]: c for c in report["checks"]}


def wait_for(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.05)


def test_a_careless_project_fails_with_evidence_and_fixes(cli, tether_any: RunningTether) -> None:
    tether_any.create_project("careless")  # permit-all, no budgets, no webhook, no drills
    tether_any.call("PATCH", "/projects/careless", json={"deletion_approval": False})
    tether_any.set_guards("careless", repeat_limit=None, max_retries=50)
    code, checks = statuses(cli, "careless")
    assert code == 1
    assert checks["own_keys"]["status"] == "warn"
    assert checks["budgets"]["status"] == "fail"
    assert checks["budgets"]["fix"].startswith("tether budgets set -p careless")
    assert checks["policy"]["status"] == "fail"
    assert "every action on unscoped resources" in checks["policy"]["evidence"]
    assert "deletions do not wait for an approval" in checks["policy"]["evidence"]
    assert (
        checks["hooks"]["status"] == "warn"
        and "require_hooks is off" in checks["hooks"]["evidence"]
    )
    assert checks["guards"]["status"] == "fail" and "repeat_limit" in checks["guards"]["evidence"]
    assert checks["drill_kill"]["status"] == checks["drill_pause"]["status"] == "fail"
    assert (
        checks["audit_trail"]["status"] == "warn"
        and "no export" in checks["audit_trail"]["evidence"]
    )
    table = cli("check", "-p", "careless")
    assert table.exit_code == 1 and "drill_kill" in table.output


def test_a_project_set_up_as_the_guidance_says_passes(
    cli, tether_any: RunningTether, receiver: Receiver, tmp_path: Path
) -> None:
    tether_any.create_project("ready", policy=SCOPED)
    key = tether_any.create_agent("builder", "ready")
    assert (
        cli("budgets", "set", "-p", "ready", "--daily", "20", "--session-limit", "2").exit_code == 0
    )
    added = tether_any.call(
        "POST", "/projects/ready/webhooks", json={"kind": "slack", "url": receiver.url}
    )
    assert added.status_code == 201, added.text
    # An alert really delivered: a repeat guard trip, with the guard then put back.
    tether_any.set_guards("ready", repeat_limit=1)
    body = {"session_id": "s", "action": "s3:GetObject", "resource": "arn:aws:s3:::b/k"}
    for _ in range(2):
        httpx.post(
            f"{tether_any.url}/v1/authorize", json=body, headers={"x-api-key": key}, timeout=60
        )
    wait_for(lambda: bool(receiver.deliveries))
    tether_any.set_guards("ready", repeat_limit=20, require_hooks=True)
    probed = cli("policy", "probe", "-a", "builder", "--key", key, "--json")
    assert probed.exit_code == 0, probed.output
    for kind in ("kill", "pause"):
        ran = cli("drill", kind, "-p", "ready", "--json")
        assert ran.exit_code == 0, ran.output
    exported = cli("audit", "export", "--dest", str(tmp_path / "export"))
    assert exported.exit_code == 0, exported.output
    code, checks = statuses(cli, "ready")
    assert {k: v["status"] for k, v in checks.items()} == dict.fromkeys(checks, "pass"), checks
    assert code == 0
    metrics = httpx.get(
        f"{tether_any.url}/metrics", headers={"Authorization": f"Bearer {tether_any.admin_token}"}
    ).text
    assert 'tether_readiness{check="drill_kill",project="ready"} 1.0' in metrics
    assert 'tether_drill_seconds{drill="pause",project="ready"}' in metrics
