"""One authorization question put to Cedar, and the entities that answer it needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tether.policy.actions import classify

__all__ = ["PolicyRequest", "resource_kind"]

_KINDS = (
    ("arn:", "aws"),
    ("anthropic:model/", "model"),
    ("/", "file"),
    ("file://", "file"),
    ("postgres://", "database"),
    ("postgresql://", "database"),
    ("mysql://", "database"),
    ("sqlite://", "database"),
    ("http://", "url"),
    ("https://", "url"),
    ("command:", "command"),
)


def resource_kind(resource: str) -> str:
    for prefix, kind in _KINDS:
        if resource.startswith(prefix):
            return kind
    return "other"


def _uid(kind: str, ident: str) -> dict[str, str]:
    return {"type": kind, "id": ident}


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    agent: str
    project: str
    action: str
    resource: str
    tags: dict[str, str] = field(default_factory=dict)
    source: str = ""
    session: str = ""
    arguments: dict[str, str] = field(default_factory=dict)
    """A tool call's arguments as strings (MCP): ``context.arguments`` in a policy."""

    def cedar_request(self, argument_keys: frozenset[str] = frozenset()) -> dict[str, Any]:
        """``argument_keys`` the policy reads are always present (``""`` when not passed)."""
        return {
            "principal": _uid("Agent", self.agent),
            "action": _uid("Action", self.action),
            "resource": _uid("Resource", self.resource),
            "context": {
                "source": self.source,
                "session": self.session,
                "arguments": {key: self.arguments.get(key, "") for key in argument_keys},
            },
        }

    def entities(self, tag_keys: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
        """``tag_keys`` the policy reads are always present (``""`` when not set)."""
        info = classify(self.action)
        tags = {key: "" for key in tag_keys}
        tags.update(self.tags)
        kind = resource_kind(self.resource)
        service = info.service if kind != "aws" else (self.resource.split(":") + [""] * 3)[2]
        return [
            {
                "uid": _uid("Agent", self.agent),
                "attrs": {"name": self.agent, "project": self.project},
                "parents": [_uid("Project", self.project)],
            },
            {"uid": _uid("Project", self.project), "attrs": {"name": self.project}, "parents": []},
            {
                "uid": _uid("Resource", self.resource),
                "attrs": {
                    "arn": self.resource,
                    "kind": kind,
                    "service": service,
                    "tags": tags,
                },
                "parents": [],
                "tags": dict(self.tags),
            },
            {
                "uid": _uid("Action", self.action),
                "attrs": {},
                "parents": [_uid("Action", group) for group in info.groups],
            },
        ]
