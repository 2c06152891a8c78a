"""The audit-trail check: the newest events verify, the last whole-chain verification
passed, the trail is exported to storage the operator owns, and anchors are recent."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.databases import run_sql
from tests.support.server import RunningTether, start_tether
from tether.cli.main import app


@pytest.fixture
def anchored(tmp_path: Path, database_url: str) -> Iterator[RunningTether]:
    """A tether keeping a signed anchor every second in a directory it owns."""
    server = start_tether(
        tmp_path / "data",
        database_url,
        audit_anchor_every=1.0,
        audit_anchor_dest=str(tmp_path / "anchors"),
    )
    yield server
    server.stop()


def audit_check(server: RunningTether, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("TETHER_URL", server.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", server.admin_token)
    ran = CliRunner().invoke(app, ["check", "-p", "p", "--json"])
    [report] = json.loads(ran.output)
    found: dict[str, str] = next(c for c in report["checks"] if c["check"] == "audit_trail")
    return found


def test_no_export_and_no_anchors_warn(
    tether_any: RunningTether, monkeypatch: pytest.MonkeyPatch
) -> None:
    tether_any.create_project("p")
    found = audit_check(tether_any, monkeypatch)
    assert found["status"] == "warn", found
    assert "events verify" in found["evidence"]
    assert "no export to storage you own in 7 days" in found["evidence"]
    assert "no signed anchors are kept" in found["evidence"]
    assert found["fix"].startswith("tether audit export --dest")


def test_exported_and_anchored_passes_and_a_changed_event_fails(
    anchored: RunningTether,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    anchored.create_project("p")
    monkeypatch.setenv("TETHER_URL", anchored.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", anchored.admin_token)
    exported = CliRunner().invoke(app, ["audit", "export", "--dest", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    deadline = time.monotonic() + 20
    while not list((tmp_path / "anchors").rglob("*.json")):
        assert time.monotonic() < deadline, "no anchor written"
        time.sleep(0.1)
    passed = audit_check(anchored, monkeypatch)
    assert passed["status"] == "pass", passed
    assert "exported" in passed["evidence"] and "to a directory" in passed["evidence"]
    assert "anchored through #" in passed["evidence"]

    run_sql(database_url, "UPDATE audit_events SET reason = 'nothing happened' WHERE seq = 2")
    failed = audit_check(anchored, monkeypatch)
    assert failed["status"] == "fail", failed
    assert "the newest events do not verify: #2" in failed["evidence"]
    assert failed["fix"] == "tether audit verify"
    assert anchored.call("GET", "/audit/verify").json()["intact"] is False
    recorded = anchored.call("GET", "/audit", params={"action": "audit:verify"}).json()
    assert recorded[0]["result"] == "error"
    assert (
        "the last whole-chain verification failed" in audit_check(anchored, monkeypatch)["evidence"]
    )
