"""Fire drills through the real doors: the canary is refused in time, nobody else is."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.support.aws import agent_client, issue_aws_keys, running_moto, set_aws_credentials
from tests.support.model_calls import model_call
from tests.support.server import RunningTether
from tether.cli.main import app


@pytest.fixture
def cli(gateway: RunningTether, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TETHER_URL", gateway.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", gateway.admin_token)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def drill_events(gateway: RunningTether, kind: str) -> list[dict]:
    found = gateway.call("GET", "/audit", params={"action": f"drill:{kind}"})
    assert found.status_code == 200, found.text
    return found.json()


@pytest.mark.parametrize("kind", ["kill", "pause", "rotate"])
def test_drill_refuses_the_canary_and_leaves_the_real_agent_working(
    cli, gateway: RunningTether, kind: str
) -> None:
    key = gateway.create_agent("real", "p")
    assert model_call(gateway, key, "real-1").status_code == 200
    ran = cli("drill", kind, "-p", "p", "--json")
    assert ran.exit_code == 0, ran.output
    report = json.loads(ran.output)
    assert report["ok"] is True, report
    assert report["seconds"] < 5
    assert model_call(gateway, key, "real-1").status_code == 200
    agents = gateway.call("GET", "/agents", params={"project": "p"}).json()
    canaries = [a for a in agents if a["name"].startswith("canary-")]
    assert [a["state"] for a in canaries] == ["revoked"]
    print(report)


def test_audit_drill_answers_the_window_for_a_real_agent(cli, gateway: RunningTether) -> None:
    key = gateway.create_agent("real", "p")
    assert model_call(gateway, key, "real-1").status_code == 200
    report = json.loads(cli("drill", "audit", "-p", "p", "--json").output)
    assert report["ok"] is True and "of real between 14:00 and 14:30" in report["notes"][0]
    assert drill_events(gateway, "audit")[0]["result"] == "ok"


def test_audit_drill_finds_the_real_agent_behind_many_canary_sessions(
    cli, gateway: RunningTether
) -> None:
    """Drills on a schedule leave a canary session each: after more of them than one page of
    sessions, the audit drill still asks about the real agent (it failed with "no real
    agent" when only the 20 latest sessions were looked at)."""
    key = gateway.create_agent("real", "p")
    assert model_call(gateway, key, "real-1").status_code == 200
    for _ in range(21):
        drilled = gateway.call("POST", "/projects/p/drills/kill").json()
        assert drilled["ok"] is True, drilled
    ran = cli("drill", "audit", "-p", "p", "--json")
    assert ran.exit_code == 0, ran.output
    assert "of real between 14:00 and 14:30" in json.loads(ran.output)["notes"][0]


def test_drill_fails_and_says_why_when_a_door_refuses_the_canary(
    cli, gateway: RunningTether
) -> None:
    gateway.apply_policy("p", "forbid(principal, action, resource);\n")
    ran = cli("drill", "kill", "-p", "p", "--json")
    assert ran.exit_code == 1
    report = json.loads(ran.output)
    assert report["ok"] is False and "refused the canary before the drill" in report["notes"][0]
    assert drill_events(gateway, "kill")[0]["result"] == "error"


def test_drill_needs_a_known_kind_and_project(gateway: RunningTether) -> None:
    unknown = gateway.call("POST", "/projects/p/drills/explode")
    assert unknown.status_code == 404 and "use one of kill, pause" in unknown.text
    assert gateway.call("POST", "/projects/nope/drills/kill").status_code == 404
    bad = gateway.call("POST", "/projects/p/drills/kill", json={"door_url": "file:///etc"})
    assert bad.status_code == 400 and "door_url" in bad.text


def test_kill_drill_across_two_postgres_replicas(replicas, upstream, monkeypatch) -> None:
    """The kill is issued on one replica and every door, the broker's too, is measured at
    the other; the real agent on the second replica keeps working."""
    first, second = replicas
    first.create_project("p", upstream.fake.api_key)
    key = first.create_agent("real", "p")
    assert model_call(second, key, "real-1").status_code == 200
    monkeypatch.setenv("TETHER_URL", first.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", first.admin_token)
    with running_moto() as moto_url:
        set_aws_credentials(first, "p", moto_url, account_id="123456789012")
        ran = CliRunner().invoke(
            app, ["drill", "kill", "-p", "p", "--door-url", second.url, "--json"]
        )
    assert ran.exit_code == 0, ran.output
    report = json.loads(ran.output)
    assert report["ok"] is True
    assert set(report["timings"]) >= {"model_refused", "hook_refused", "broker_refused"}
    assert model_call(second, key, "real-1").status_code == 200
    print(report)


@pytest.mark.parametrize("kind", ["kill", "pause"])
def test_drill_knocks_on_the_broker_door_when_the_broker_is_configured(
    cli, gateway: RunningTether, kind: str
) -> None:
    with running_moto() as moto_url:
        set_aws_credentials(gateway, "p", moto_url, account_id="123456789012")
        gateway.create_agent("ops", "p")
        sts = agent_client(gateway, issue_aws_keys(gateway, "ops"), "sts")
        assert sts.get_caller_identity()["Account"] == "123456789012"
        ran = cli("drill", kind, "-p", "p", "--json")
        assert ran.exit_code == 0, ran.output
        report = json.loads(ran.output)
        assert report["ok"] is True, report
        assert set(report["timings"]) >= {"model_refused", "hook_refused", "broker_refused"}
        assert report["timings"]["broker_refused"] < 1, report
        assert sts.get_caller_identity()["Account"] == "123456789012"
        keys = gateway.call("GET", "/agents", params={"project": "p"}).json()
        canary = next(a["name"] for a in keys if a["name"].startswith("canary-"))
        pairs = gateway.call("GET", f"/agents/{canary}/aws-keys").json()
        assert pairs and all(p["revoked_at"] for p in pairs), pairs
        print(report)


def test_without_a_broker_the_drill_uses_the_model_and_hook_doors(
    cli, gateway: RunningTether
) -> None:
    report = json.loads(cli("drill", "kill", "-p", "p", "--json").output)
    assert report["ok"] is True and "broker_refused" not in report["timings"]
