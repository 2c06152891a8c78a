"""Probes for ``tether policy probe``: actions just outside what a policy permits —
other prefixes, other tags, deletions — derived from the policy's own patterns, plus a
fixed set of things no agent should be able to do unasked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import cedarpy

from tether.policy.actions import KNOWN_ACTIONS
from tether.records.fleet import PROBE_SESSION_PREFIX

__all__ = ["PROBE_SESSION_PREFIX", "CandidateProbe", "candidate_probes"]

ALWAYS = [
    ("s3:DeleteBucket", "arn:aws:s3:::prod-data"),
    ("iam:DeleteRole", "arn:aws:iam:::role/admin"),
    ("ec2:TerminateInstances", "arn:aws:ec2:::instance/i-production"),
    ("db:DropDatabase", "postgres://prod-db/main"),
    ("file:Delete", "/"),
    ("file:Write", "/etc/passwd"),
]
PROBE_NAME = "tether-probe"


@dataclass(frozen=True, slots=True)
class CandidateProbe:
    action: str
    resource: str
    why: str
    tags: dict[str, str] = field(default_factory=dict)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _is_resource_attr(node: Any, attr: str) -> bool:
    access = node.get(".") if isinstance(node, dict) else None
    return bool(access and access.get("attr") == attr and access.get("left") == {"Var": "resource"})


def _prefixes(est: Any) -> set[str]:
    found = set()
    for node in _walk(est):
        like = node.get("like")
        if isinstance(like, dict) and _is_resource_attr(like.get("left"), "arn"):
            prefix = ""
            for part in like.get("pattern", []):
                if not isinstance(part, dict):
                    break
                prefix += part.get("Literal", "")
            found.add(prefix)
    return found


def _tag_equalities(est: Any) -> set[tuple[str, str]]:
    found = set()
    for node in _walk(est):
        equal = node.get("==")
        if not isinstance(equal, dict):
            continue
        left, right = equal.get("left"), equal.get("right")
        access = left.get(".") if isinstance(left, dict) else None
        value = right.get("Value") if isinstance(right, dict) else None
        if access and isinstance(value, str) and _is_resource_attr(access.get("left"), "tags"):
            found.add((str(access["attr"]), value))
    return found


REPRESENTATIVE = {"delete": "file:Delete", "write": "file:Write", "read": "file:Read"}


def _actions(policy: Any) -> list[str]:
    """The policy's actions, a group standing for one of its members."""
    scope = policy.get("action", {})
    entities = scope.get("entities") or ([scope["entity"]] if "entity" in scope else [])
    found = []
    for entity in entities:
        name = entity["id"]
        if name.endswith(":*"):
            service = name[:-1]
            name = next((a for a in KNOWN_ACTIONS if a.startswith(service)), f"{service}Get")
        found.append(REPRESENTATIVE.get(name, name))
    return found or ["file:Write"]


def _outside(prefix: str) -> list[str]:
    """Resources of the prefix's shape that the prefix does not cover."""
    variants = set()
    if prefix.endswith("/"):
        parent = prefix.rstrip("/").rsplit("/", 1)[0]
        variants.add(f"{parent}/{PROBE_NAME}-outside")
    else:
        cut = max(prefix.rfind(":"), prefix.rfind("/"))
        head, tail = prefix[: cut + 1], prefix[cut + 1 :]
        variants.add(f"{head}{PROBE_NAME}-outside")
        if "dev" in tail:
            variants.add(f"{head}{tail.replace('dev', 'prod')}{PROBE_NAME}")
    return sorted(v for v in variants if not v.startswith(prefix))


def candidate_probes(source: str) -> list[CandidateProbe]:
    est = json.loads(cedarpy.policies_to_json_str(source)) if source.strip() else {}
    probes = [CandidateProbe(a, r, "never without a human") for a, r in ALWAYS]
    for policy in est.get("staticPolicies", {}).values():
        if policy.get("effect") != "permit":
            continue
        actions = _actions(policy)
        for prefix in sorted(_prefixes(policy)):
            for resource in _outside(prefix):
                probes.extend(
                    CandidateProbe(action, resource, f"outside the prefix {prefix}*")
                    for action in actions
                )
            inside = prefix + PROBE_NAME
            probes.append(
                CandidateProbe(_deletion_for(inside), inside, f"a deletion inside {prefix}*")
            )
        for key, value in sorted(_tag_equalities(policy)):
            other = "prod" if value != "prod" else f"{PROBE_NAME}-other"
            probes.extend(
                CandidateProbe(action, f"{PROBE_NAME}:tagged", f"tag {key}={other}", {key: other})
                for action in actions
            )
    unique: dict[tuple[str, str, str], CandidateProbe] = {}
    for probe in probes:
        unique.setdefault((probe.action, probe.resource, json.dumps(probe.tags)), probe)
    return list(unique.values())


def _deletion_for(resource: str) -> str:
    if resource.startswith("arn:aws:s3:::"):
        return "s3:DeleteBucket" if "/" not in resource else "s3:DeleteObject"
    if resource.startswith("arn:aws:"):
        service = resource.split(":")[2]
        return f"{service}:Delete{PROBE_NAME.title().replace('-', '')}"
    if resource.startswith(("postgres://", "mysql://")):
        return "db:DropTable"
    return "file:Delete"
