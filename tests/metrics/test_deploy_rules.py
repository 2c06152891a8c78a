"""The alert rules and the Grafana dashboard shipped in deploy/ name only metrics that a
running tether exports, so neither silently watches nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.server import RunningTether

DEPLOY = Path(__file__).parents[2] / "deploy"
METRIC = re.compile(r"\b((?:tether|process)_[a-z_]+)\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_names(tether: RunningTether) -> set[str]:
    answer = httpx.get(
        f"{tether.url}/metrics", headers={"Authorization": f"Bearer {tether.admin_token}"}
    )
    assert answer.status_code == 200
    names = set()
    for family in text_string_to_metric_families(answer.text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for value in node.values() for e in expressions(value)]
    if isinstance(node, list):
        return [e for value in node for e in expressions(value)]
    return []


def test_alerts_and_dashboard_name_only_exported_metrics(tether: RunningTether) -> None:
    alerts = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    dashboard = json.loads((DEPLOY / "grafana" / "tether.json").read_text())
    rules = [rule for group in alerts["groups"] for rule in group["rules"]]
    wanted = {
        "TetherBudgetAt80Percent",
        "TetherGuardTripped",
        "TetherAuditWriteFailures",
        "TetherCircuitBreakerOpen",
    }
    assert wanted <= {rule["alert"] for rule in rules}
    exported = exported_names(tether)
    for source, exprs in (
        ("alerts.yaml", expressions(rules)),
        ("tether.json", expressions(dashboard)),
    ):
        assert exprs, source
        named = {name for expr in exprs for name in METRIC.findall(expr)}
        assert named, source
        assert named <= exported, (
            f"{source} names metrics tether does not export: {named - exported}"
        )
