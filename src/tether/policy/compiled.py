"""A policy version compiled once: parsed, validated against the schema, and ready to
answer requests without re-parsing. Cedar skips a policy whose condition errors; for a
``forbid`` that would silently allow, so an erroring ``forbid`` denies (fail closed)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

import cedarpy

from tether.bounded import remember
from tether.errors import PolicyInvalid
from tether.policy.actions import classify
from tether.policy.request import PolicyRequest
from tether.policy.schema import argument_keys, build_schema, tag_keys
from tether.policy.source import SourceError, Statement, locate_error, split_statements

__all__ = [
    "BASE_POLICY",
    "MODEL_ACCESS",
    "CompiledPolicy",
    "PolicyAnswer",
    "Rule",
    "compile_policy",
    "default_deny",
]

BASE_POLICY = '@id("tether:model-access")\npermit(principal, action in Action::"model", resource);'
"""Model calls are governed by keys, budgets and the kill switch; a project's policy can
still ``forbid`` them. Everything else is denied unless the project's policy permits it."""

_POLICY_ID = re.compile(r"\bpolicy(\d+)\b")

Effect = Literal["allow", "deny", "ask"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One statement of the file, as the decision reasons name it."""

    effect: str
    line: int
    name: str | None
    ask: str | None
    reason: str | None
    touches_models: bool = True
    """False only when the rule's action scope cannot include a ``model:*`` action."""
    argument_actions: tuple[str, ...] | None = None
    """A permit whose conditions read ``context.arguments``: the actions (or groups) its
    scope names, ``("*",)`` for any; None for every other rule."""

    @property
    def label(self) -> str:
        if self.name:
            return f"{self.name!r} (line {self.line})" if self.line else repr(self.name)
        return f"at line {self.line}"


@dataclass(frozen=True, slots=True)
class PolicyAnswer:
    effect: Effect
    reason: str
    rules: tuple[str, ...] = ()


MODEL_ACCESS = PolicyAnswer(
    "allow", "model calls are permitted by the built-in policy", ("'tether:model-access'",)
)


def _est(statement: Statement) -> dict[str, Any]:
    est = json.loads(cedarpy.policies_to_json_str(statement.text))
    policies = list(est["staticPolicies"].values())
    return dict(policies[0]) if policies else {}


def _touches_models(est: dict[str, Any]) -> bool:
    scope = est.get("action", {})
    if scope.get("op") not in ("==", "in"):
        return True
    entities = scope.get("entities") or [scope.get("entity", {})]
    return any(str(e.get("id", "")).startswith(("model", "model:")) for e in entities)


def _argument_actions(est: dict[str, Any], text: str) -> tuple[str, ...] | None:
    if est.get("effect") != "permit" or not argument_keys(text):
        return None
    scope = est.get("action", {})
    if scope.get("op") not in ("==", "in"):
        return ("*",)
    entities = scope.get("entities") or [scope.get("entity", {})]
    return tuple(str(e.get("id", "")) for e in entities)


def _reads_principal(est: dict[str, Any]) -> bool:
    """Whether the rule's answer can depend on who asks: a scoped principal, or
    ``principal`` anywhere in its conditions."""
    scope = est.get("principal", {})
    return scope.get("op") != "All" or '"Var": "principal"' in json.dumps(est.get("conditions"))


def _rule(source: str, statement: Statement, est: dict[str, Any]) -> Rule:
    notes = dict(est.get("annotations") or {})
    effect = str(est.get("effect", "permit"))
    line = source.count("\n", 0, statement.offset) + 1
    return Rule(
        effect=effect,
        line=line,
        name=notes.get("id") or None,
        ask=(notes["ask"] or "this action needs a human approval") if "ask" in notes else None,
        reason=notes.get("reason") or None,
        touches_models=_touches_models(est),
        argument_actions=_argument_actions(est, statement.text),
    )


def _parse_errors(source: str, statements: list[Statement]) -> list[SourceError]:
    errors = []
    for statement in statements:
        try:
            parsed = cedarpy.PolicySet.from_str(statement.text)
        except ValueError as exc:
            errors.append(locate_error(source, statement, str(exc)))
            continue
        if parsed.templates():
            errors.append(
                locate_error(
                    source, statement, "templates (?principal, ?resource) are not supported"
                )
            )
    return errors


def _validation_errors(source: str, statements: list[Statement]) -> list[SourceError]:
    result = cedarpy.validate_policies(source, build_schema(source))
    errors = []
    for error in result.errors:
        match = _POLICY_ID.fullmatch(error.policy_id)
        if match and int(match.group(1)) < len(statements):
            errors.append(locate_error(source, statements[int(match.group(1))], error.error))
        else:
            errors.append(SourceError(1, 1, error.error))
    return errors


def compile_policy(source: str) -> CompiledPolicy:
    """Raises ``PolicyInvalid`` listing every error with its line and column."""
    statements = split_statements(source)
    errors = _parse_errors(source, statements) or _validation_errors(source, statements)
    if errors:
        first = errors[0]
        raise PolicyInvalid(
            f"the policy has {len(errors)} error(s); first at line {first.line}, "
            f"column {first.column}: {first.message}",
            [error.as_dict() for error in errors],
        )
    ests = [_est(statement) for statement in statements]
    rules = [_rule(source, statement, est) for statement, est in zip(statements, ests, strict=True)]
    rules.append(Rule("permit", 0, "tether:model-access", None, None))
    handle = cedarpy.PolicySet.from_str(f"{source}\n{BASE_POLICY}")
    reads_principal = any(_reads_principal(est) for est in ests)
    return CompiledPolicy(
        source,
        handle,
        tuple(rules),
        reads_principal=reads_principal,
        ests=(*ests, _BASE_EST),
    )


_BASE_EST = dict(json.loads(cedarpy.policies_to_json_str(BASE_POLICY))["staticPolicies"]["policy0"])

_SHAPE = re.compile(
    r'\b(?:tags|arguments|context)\s*(?:==|!=|has\s*")|(?:==|!=)\s*(?:resource\s*\.\s*tags|context)\b'
)
"""Expressions that could tell a record holding extra keys from one without them: a
record compared whole, or ``has "key"`` (which the key lists do not see)."""


def default_deny(request: PolicyRequest) -> PolicyAnswer:
    return PolicyAnswer(
        "deny",
        f"no policy permits {request.action} on {request.resource} for agent {request.agent} "
        "(default deny)",
    )


ANSWERS_KEPT = 4_096
BATCH_SIZE = 2_000
ENTITIES_KEPT = 1_024
ENTITIES_KEPT_RESOURCE_CHARS = 512
"""Parsed entity sets are kept only for resources up to this length: a few MB at most."""


class CompiledPolicy:
    """One version's rules. Answers are remembered per version: Cedar is deterministic
    in the request, and a new version is a new ``CompiledPolicy``, so applying it
    forgets every remembered answer at once. When no rule looks at the principal, one
    answer serves every agent asking the same thing (only a default deny names the
    agent, and is reworded for each)."""

    def __init__(
        self,
        source: str,
        handle: cedarpy.PolicySet,
        rules: tuple[Rule, ...],
        *,
        reads_principal: bool = True,
        ests: tuple[dict[str, Any], ...] = (),
    ) -> None:
        self._handle = handle
        self.ests = ests
        """Each rule as Cedar's JSON form (the built-in permit last): for ``ShadowPair``."""
        self.observes_record_shape = bool(_SHAPE.search(source))
        self._reads_principal = reads_principal
        self.rules = rules
        self._tag_keys = tag_keys(source)
        self._argument_keys = argument_keys(source)
        self._reads_context = "context" in source
        self._answers: dict[tuple[object, ...], PolicyAnswer] = {}
        self._entities: dict[tuple[object, ...], cedarpy.Entities] = {}
        self.models_always_allowed = not any(
            rule.touches_models and (rule.effect == "forbid" or rule.ask) for rule in rules
        )
        """No forbid or ``@ask`` rule can reach a model call: the base permit decides it."""

    def _key(self, request: PolicyRequest) -> tuple[object, ...]:
        tags = tuple(sorted(request.tags.items())) if request.tags else ()
        agent = request.agent if self._reads_principal else ""
        base = (agent, request.project, request.action, request.resource, tags)
        if not self._reads_context:
            return base
        arguments = tuple(request.arguments.get(key, "") for key in sorted(self._argument_keys))
        return (*base, request.source, request.session, arguments)

    @property
    def tag_keys(self) -> frozenset[str]:
        return self._tag_keys

    @property
    def argument_keys(self) -> frozenset[str]:
        return self._argument_keys

    @property
    def tells_agents_apart(self) -> bool:
        """False when no rule looks at the principal: every agent gets the same answer."""
        return self._reads_principal

    def may_permit_with_arguments(self, action: str) -> bool:
        """Whether some permit naming ``action`` (or its group) depends on the call's
        arguments: a tool list shows such a tool, and each call is decided on its own."""
        groups = {action, "*", *classify(action).groups}
        return any(
            rule.argument_actions is not None and groups.intersection(rule.argument_actions)
            for rule in self.rules
        )

    def evaluate(self, request: PolicyRequest) -> PolicyAnswer:
        answer = self.remembered(request)
        if answer is None:
            answer = self._evaluate(request)
            self.remember(request, answer)
        return answer

    def remembered(self, request: PolicyRequest) -> PolicyAnswer | None:
        """The answer this version already gave to the same question, if it is kept."""
        answer = self._answers.get(self._key(request))
        if answer is not None and answer.effect == "deny" and not answer.rules:
            return answer if self._reads_principal else default_deny(request)
        return answer

    def kept(self) -> tuple[int, int]:
        """Answers and parsed entity sets held now (at most ``ANSWERS_KEPT`` and
        ``ENTITIES_KEPT``)."""
        return len(self._answers), len(self._entities)

    def remember(self, request: PolicyRequest, answer: PolicyAnswer) -> None:
        remember(self._answers, self._key(request), answer, ANSWERS_KEPT)

    def _evaluate(self, request: PolicyRequest) -> PolicyAnswer:
        result = cedarpy.is_authorized(
            request.cedar_request(self._argument_keys), self._handle, self._entities_of(request)
        )
        return self._answer(request, result)

    def _entities_of(self, request: PolicyRequest) -> cedarpy.Entities:
        """The request's entities, parsed by Cedar once per (agent, action, resource, tags):
        they do not depend on the call's arguments or session, which change every call
        (an MCP tool's), so a new question about the same tool skips half of Cedar's work."""
        tags = tuple(sorted(request.tags.items())) if request.tags else ()
        key = (request.agent, request.project, request.action, request.resource, tags)
        entities = self._entities.get(key)
        if entities is None:
            entities = cedarpy.Entities.from_json_str(json.dumps(request.entities(self._tag_keys)))
            if len(request.resource) <= ENTITIES_KEPT_RESOURCE_CHARS:
                remember(self._entities, key, entities, ENTITIES_KEPT)
        return entities

    def evaluate_many(self, requests: list[PolicyRequest]) -> list[PolicyAnswer]:
        """Answers in order, each distinct question (as the rules can tell them apart)
        asked of Cedar once, in batches: for replaying a trail, not for the request path."""
        keys = [self._key(request) for request in requests]
        first: dict[tuple[object, ...], PolicyRequest] = {}
        for key, request in zip(keys, requests, strict=True):
            first.setdefault(key, request)
        # by tags, then resource: a resource seen with other tags ends a Cedar batch
        order = sorted(first, key=lambda k: (k[4], k[3]))
        distinct = [first[key] for key in order]
        known = dict(zip(order, self._evaluate_distinct(distinct), strict=True))
        answers = []
        for key, request in zip(keys, requests, strict=True):
            answer = known[key]
            if answer.effect == "deny" and not answer.rules and first[key] is not request:
                answer = default_deny(request)
            answers.append(answer)
        return answers

    def _evaluate_distinct(self, requests: list[PolicyRequest]) -> list[PolicyAnswer]:
        answers: list[PolicyAnswer] = []
        batch: list[PolicyRequest] = []
        entities: dict[tuple[str, str], dict[str, Any]] = {}
        for request in requests:
            mine = request.entities(self._tag_keys)
            clash = any(entities.get((e["uid"]["type"], e["uid"]["id"]), e) != e for e in mine)
            if clash or len(batch) >= BATCH_SIZE:
                answers += self._evaluate_batch(batch, entities)
                batch, entities = [], {}
            batch.append(request)
            for entity in mine:
                entities[(entity["uid"]["type"], entity["uid"]["id"])] = entity
        return answers + self._evaluate_batch(batch, entities)

    def _evaluate_batch(
        self, batch: list[PolicyRequest], entities: dict[tuple[str, str], dict[str, Any]]
    ) -> list[PolicyAnswer]:
        if not batch:
            return []
        results = cedarpy.is_authorized_batch(
            [r.cedar_request() for r in batch], self._handle, json.dumps(list(entities.values()))
        )
        return [self._answer(r, result) for r, result in zip(batch, results, strict=True)]

    def _answer(self, request: PolicyRequest, result: cedarpy.AuthzResult) -> PolicyAnswer:
        errors = []
        for message in result.diagnostics.errors:
            match = _POLICY_ID.search(message)
            if match:
                errors.append((int(match.group(1)), message))
        reasons = [
            int(m.group(1)) for r in result.diagnostics.reasons if (m := _POLICY_ID.search(r))
        ]
        return self.conclude(request, result.allowed, reasons, errors)

    def conclude(
        self,
        request: PolicyRequest,
        allowed: bool,
        reasons: list[int],
        errors: list[tuple[int, str]],
    ) -> PolicyAnswer:
        """The answer from Cedar's verdict: the rules that decided it (by index; named in
        file order, since Cedar lists them in no stable order) and the rules that failed
        to evaluate (index, message)."""
        for index, message in sorted(errors):
            rule = self.rules[index] if index < len(self.rules) else None
            if rule is not None and rule.effect == "forbid":
                return PolicyAnswer(
                    "deny",
                    f"forbid policy {rule.label} could not be evaluated ({message}); denied",
                    (rule.label,),
                )
        matched = [self.rules[i] for i in sorted(set(reasons)) if i < len(self.rules)]
        labels = tuple(rule.label for rule in matched)
        target = f"{request.action} on {request.resource}"
        if not allowed:
            if matched:
                rule = matched[0]
                why = f": {rule.reason}" if rule.reason else ""
                return PolicyAnswer(
                    "deny", f"{target} is forbidden by policy {rule.label}{why}", labels
                )
            return default_deny(request)
        asking = [rule for rule in matched if rule.ask]
        if asking:
            return PolicyAnswer("ask", f"{asking[0].ask} (policy {asking[0].label})", labels)
        return PolicyAnswer("allow", f"{target} is permitted by policy {matched[0].label}", labels)
