"""A least-privilege policy from what agents really did: one permit per (principal, action)
over the narrowest resource prefixes that cover what was allowed, deletions left to a
human (``@ask``), and tags never allowed forbidden outright. Valid Cedar, checked by
compiling it; what the trail never shows stays denied by default."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from tether.policy.actions import classify
from tether.policy.compiled import compile_policy
from tether.policy.starter import cedar_string, like_literal
from tether.policy.trail import PastDecision, Tally

__all__ = ["GENERALISATIONS", "Suggestion", "suggest_policy"]

GENERALISATIONS = frozenset({"bucket", "prefix", "tag"})
MAX_CONDITIONS = 12
"""A rule with more alternatives than this is widened one level (parent folder, bucket)."""
_ROOTS = frozenset({"", "/", "arn:aws:s3:::", "command:", "mcp://", "file://"})


@dataclass(frozen=True, slots=True)
class Suggestion:
    source: str
    rules: int
    covered_calls: int
    resources: int


@dataclass(slots=True)
class _Seen:
    count: int = 0
    example: str = ""
    tags: set[tuple[str, str]] | None = None


def _container(resource: str, generalise: frozenset[str]) -> str:
    """The folder a resource sits in: the part up to its last ``/`` (or ``:`` for ARNs
    without one); an S3 object's bucket when generalising to buckets."""
    if "bucket" in generalise and resource.startswith("arn:aws:s3:::") and "/" in resource:
        return resource.split("/", 1)[0] + "/"
    if resource.startswith("command:"):
        return resource
    cut = max(resource.rfind("/"), resource.rfind(":") if resource.startswith("arn:") else -1)
    return resource[: cut + 1] if cut > 0 else resource


def _parent(container: str) -> str:
    trimmed = container.rstrip("/:")
    cut = max(trimmed.rfind("/"), trimmed.rfind(":") if trimmed.startswith("arn:") else -1)
    parent = trimmed[: cut + 1] if cut >= 0 else container
    return container if parent in _ROOTS else parent


def _common_prefix(resources: list[str]) -> str:
    first, last = min(resources), max(resources)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def _conditions(resources: list[str], generalise: frozenset[str]) -> list[str]:
    clusters: dict[str, list[str]] = defaultdict(list)
    for resource in resources:
        clusters[_container(resource, generalise)].append(resource)
    while len(clusters) > MAX_CONDITIONS:
        widened: dict[str, list[str]] = defaultdict(list)
        for container, members in clusters.items():
            widened[_parent(container)].extend(members)
        if len(widened) == len(clusters):
            break
        clusters = widened
    if "prefix" in generalise and len(clusters) > 1:
        prefix = _common_prefix(list(clusters))
        if _container(prefix, frozenset()) not in _ROOTS:
            clusters = {_container(prefix, frozenset()): resources}
    conditions = []
    for container, members in sorted(clusters.items()):
        if len(set(members)) == 1:
            conditions.append(f'resource.arn == "{cedar_string(members[0])}"')
            continue
        prefix = _common_prefix(members)
        prefix = prefix if prefix.startswith(container) else container
        cut = max(prefix.rfind("/"), prefix.rfind(":") if prefix.startswith("arn:") else -1)
        prefix = prefix[: cut + 1] if cut + 1 >= len(container) else container
        conditions.append(f'resource.arn like "{like_literal(prefix)}*"')
    return conditions


def _shared_tag(seen: dict[str, _Seen]) -> tuple[str, str] | None:
    tag_sets = [s.tags for s in seen.values()]
    if not tag_sets or any(not t for t in tag_sets):
        return None
    common = set.intersection(*(t for t in tag_sets if t is not None))
    return min(common) if common else None


def _principal(agents: list[str], everyone: set[str], project: str) -> list[str]:
    if len(everyone) > 1 and set(agents) == everyone:
        return [f'principal in Project::"{cedar_string(project)}"']
    return [f'principal == Agent::"{cedar_string(a)}"' for a in sorted(agents)]


def suggest_policy(
    project: str,
    decisions: dict[PastDecision, Tally],
    generalise: frozenset[str] = frozenset(),
) -> Suggestion:
    """A policy that permits what ``decisions`` permitted and little else."""
    by_action: dict[str, dict[str, dict[str, _Seen]]] = defaultdict(lambda: defaultdict(dict))
    denied_tags: dict[tuple[str, str], int] = defaultdict(int)
    allowed_tags: set[tuple[str, str]] = set()
    for past, tally in decisions.items():
        if not past.permitted:
            for tag in past.tags:
                denied_tags[tag] += tally.count
            continue
        allowed_tags.update(past.tags)
        if past.action.startswith("model:"):
            continue
        seen = by_action[past.action][past.agent].setdefault(past.resource, _Seen(tags=set()))
        seen.count += tally.count
        if seen.tags is not None:
            seen.tags.update(past.tags)
    everyone = {agent for agents in by_action.values() for agent in agents}
    blocks: list[str] = [
        f"// tether policy suggest for project {project}: least privilege from the audit trail."
        "\n// Anything not permitted below stays denied."
    ]
    rules = calls = 0
    for action in sorted(by_action):
        agents = by_action[action]
        deletion = classify(action).is_deletion
        same_everywhere = len({frozenset(r) for r in agents.values()}) == 1
        groups: list[tuple[str, dict[str, _Seen]]]
        if same_everywhere and len(everyone) > 1 and set(agents) == everyone:
            merged: dict[str, _Seen] = {}
            for seen_by_agent in agents.values():
                for resource, one in seen_by_agent.items():
                    into = merged.setdefault(resource, _Seen(tags=set()))
                    into.count += one.count
                    if into.tags is not None and one.tags:
                        into.tags.update(one.tags)
            groups = [(_principal(list(agents), everyone, project)[0], merged)]
        else:
            groups = [(_principal([a], everyone, project)[0], agents[a]) for a in sorted(agents)]
        for principal, covered in groups:
            used = generalise if not deletion else frozenset()
            shared = _shared_tag(covered) if "tag" in used else None
            if shared is not None:
                tag_key, tag_value = cedar_string(shared[0]), cedar_string(shared[1])
                conditions = [f'resource.tags["{tag_key}"] == "{tag_value}"']
            else:
                conditions = _conditions(list(covered), used)
            count = sum(s.count for s in covered.values())
            example = " ".join(max(covered, key=lambda r: covered[r].count).split())[:160]
            rules += 1
            calls += count
            notes = [f"// {count} call(s) on {len(covered)} resource(s), e.g. {example}"]
            notes.append(f'@id("suggested-{rules}")')
            if deletion:
                notes.append(f'@ask("a deletion: a human approves each ({count} seen)")')
            when = "\n  || ".join(conditions)
            blocks.append(
                "\n".join(notes)
                + f'\npermit(\n  {principal},\n  action == Action::"{cedar_string(action)}",'
                f"\n  resource\n) when {{\n  {when}\n}};"
            )
    for (key, value), count in sorted(denied_tags.items()):
        if (key, value) in allowed_tags:
            continue
        rules += 1
        blocks.append(
            f"// {count} denied call(s) on resources tagged {key}={value}, none allowed\n"
            f'@id("suggested-{rules}")\n'
            f'forbid(principal, action, resource) when {{ resource.tags["{cedar_string(key)}"]'
            f' == "{cedar_string(value)}" }};'
        )
    source = "\n\n".join(blocks) + "\n"
    compile_policy(source)
    resources = len({p.resource for p, t in decisions.items() if p.permitted})
    return Suggestion(source, rules, calls, resources)
