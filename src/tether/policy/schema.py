"""The Cedar schema policies are validated against on upload.

Entity types are fixed (``Agent`` in ``Project``, ``Resource``); the actions are the
groups plus every action the policy names, and the keys of ``resource.tags`` are the
ones the policy reads, since tags are the operator's own vocabulary.
"""

from __future__ import annotations

import re
from typing import Any

from tether.policy.actions import GROUPS, KNOWN_ACTIONS, classify, is_group

__all__ = ["CONTEXT_ATTRIBUTES", "argument_keys", "build_schema", "named_actions", "tag_keys"]

_ACTION = re.compile(r'Action\s*::\s*"((?:[^"\\]|\\.)*)"')
_TAG_ATTR = re.compile(r"resource\s*\.\s*tags\s*\.\s*([A-Za-z_]\w*)")
_TAG_HAS = re.compile(r"resource\s*\.\s*tags\s+has\s+([A-Za-z_]\w*)")
_TAG_INDEX = re.compile(r'resource\s*\.\s*tags\s*\[\s*"((?:[^"\\]|\\.)*)"\s*\]')

_ARG_ATTR = re.compile(r"context\s*\.\s*arguments\s*\.\s*([A-Za-z_]\w*)")
_ARG_HAS = re.compile(r"context\s*\.\s*arguments\s+has\s+([A-Za-z_]\w*)")
_ARG_INDEX = re.compile(r'context\s*\.\s*arguments\s*\[\s*"((?:[^"\\]|\\.)*)"\s*\]')

CONTEXT_ATTRIBUTES = ("source", "session")


def named_actions(text: str) -> set[str]:
    return set(_ACTION.findall(text))


def tag_keys(text: str) -> frozenset[str]:
    """The tag keys a policy reads. A tag a resource does not carry reads as ``""``, so
    ``resource.tags.env == "prod"`` is simply false for an untagged resource."""
    return frozenset(_TAG_ATTR.findall(text) + _TAG_HAS.findall(text) + _TAG_INDEX.findall(text))


def argument_keys(text: str) -> frozenset[str]:
    """The tool-call arguments a policy reads (``context.arguments.table``): always present
    in the context, ``""`` when the call does not pass them, strings otherwise."""
    return frozenset(_ARG_ATTR.findall(text) + _ARG_HAS.findall(text) + _ARG_INDEX.findall(text))


def _string() -> dict[str, str]:
    return {"type": "String"}


def _record(attributes: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Record", "attributes": attributes}


def build_schema(text: str) -> dict[str, Any]:
    groups = set(GROUPS)
    concrete: dict[str, list[str]] = {}
    for name in named_actions(text) | set(KNOWN_ACTIONS):
        if is_group(name):
            groups.add(name)
            continue
        info = classify(name)
        concrete[name] = list(info.groups)
        groups.update(info.groups)
    context_attributes = {key: _string() for key in CONTEXT_ATTRIBUTES}
    context_attributes["arguments"] = _record(
        {key: _string() for key in sorted(argument_keys(text))}
    )
    context = _record(context_attributes)
    actions: dict[str, Any] = {group: {} for group in groups}
    for name, parents in concrete.items():
        actions[name] = {
            "memberOf": [{"id": parent} for parent in parents],
            "appliesTo": {
                "principalTypes": ["Agent"],
                "resourceTypes": ["Resource"],
                "context": context,
            },
        }
    tags = _record({key: _string() for key in sorted(tag_keys(text))})
    return {
        "": {
            "entityTypes": {
                "Project": {"shape": _record({"name": _string()})},
                "Agent": {
                    "memberOfTypes": ["Project"],
                    "shape": _record({"name": _string(), "project": _string()}),
                },
                "Resource": {
                    "shape": _record(
                        {"arn": _string(), "kind": _string(), "service": _string(), "tags": tags}
                    ),
                    "tags": _string(),
                },
            },
            "actions": actions,
        }
    }
