"""The policy in force and its shadow answered together, in one Cedar call per question.

Shadow mode must cost next to nothing per decision, and most of a Cedar call is fixed
cost (reading the request and entities, building the answer), not the rules. So both
policies' rules go into one *probe* set where every rule is a ``permit``: Cedar then
names every rule whose scope and conditions hold, and each policy's verdict follows from
its own rules among them (allowed when one of its permits holds and none of its forbids;
a rule that fails to evaluate holds for neither, as in Cedar). A rule the two files share
is evaluated once.
"""

from __future__ import annotations

import json
import re
from typing import Any

import cedarpy

from tether.policy.compiled import CompiledPolicy, PolicyAnswer
from tether.policy.request import PolicyRequest

__all__ = ["ShadowPair"]

_POLICY_ID = re.compile(r"\bpolicy(\d+)\b")
_SCOPE = ("principal", "action", "resource")


def _condition_key(est: dict[str, Any]) -> str:
    """What decides whether a rule holds: its scope and conditions, not its effect or
    annotations."""
    return json.dumps(
        {**{part: est.get(part) for part in _SCOPE}, "conditions": est.get("conditions") or []},
        sort_keys=True,
    )


class ShadowPair:
    """One policy version in force and one shadow candidate; rebuilt when either changes."""

    def __init__(self, live: CompiledPolicy, candidate: CompiledPolicy) -> None:
        self.live = live
        self.candidate = candidate
        self._tag_keys = live.tag_keys | candidate.tag_keys
        self._argument_keys = live.argument_keys | candidate.argument_keys
        same_keys = (
            live.tag_keys == candidate.tag_keys and live.argument_keys == candidate.argument_keys
        )
        shape_blind = not (live.observes_record_shape or candidate.observes_record_shape)
        self._probe: cedarpy.PolicySet | None = None
        self._live_of: list[list[int]] = []
        self._candidate_of: list[list[int]] = []
        if live.ests and candidate.ests and (same_keys or shape_blind):
            self._probe = self._build(live.ests, candidate.ests)

    @property
    def shared_call(self) -> bool:
        """False when the two must be asked apart: a policy that could tell the other's
        extra tag or argument keys from absent ones (a whole-record comparison)."""
        return self._probe is not None

    def _build(
        self, live: tuple[dict[str, Any], ...], candidate: tuple[dict[str, Any], ...]
    ) -> cedarpy.PolicySet:
        index: dict[str, int] = {}
        policies: dict[str, dict[str, Any]] = {}
        for ests, owners in ((live, self._live_of), (candidate, self._candidate_of)):
            for own, est in enumerate(ests):
                key = _condition_key(est)
                k = index.get(key)
                if k is None:
                    k = index[key] = len(index)
                    self._live_of.append([])
                    self._candidate_of.append([])
                    policies[f"policy{k}"] = {
                        "effect": "permit",
                        **{part: est[part] for part in _SCOPE},
                        "conditions": est.get("conditions") or [],
                    }
                owners[k].append(own)
        document = {"staticPolicies": policies, "templates": {}, "templateLinks": []}
        return cedarpy.PolicySet.from_json_str(json.dumps(document))

    def evaluate(self, request: PolicyRequest) -> tuple[PolicyAnswer, PolicyAnswer]:
        """(policy in force's answer, candidate's answer); each remembered by its version
        as ``CompiledPolicy.evaluate`` would."""
        live = self.live.remembered(request)
        candidate = self.candidate.remembered(request)
        if live is None and candidate is None and self._probe is not None:
            live, candidate = self._evaluate(request)
            self.live.remember(request, live)
            self.candidate.remember(request, candidate)
        return (
            live if live is not None else self.live.evaluate(request),
            candidate if candidate is not None else self.candidate.evaluate(request),
        )

    def _evaluate(self, request: PolicyRequest) -> tuple[PolicyAnswer, PolicyAnswer]:
        assert self._probe is not None
        result = cedarpy.is_authorized(
            request.cedar_request(self._argument_keys),
            self._probe,
            json.dumps(request.entities(self._tag_keys)),
        )
        held = [int(m.group(1)) for r in result.diagnostics.reasons if (m := _POLICY_ID.search(r))]
        failed = []
        for message in result.diagnostics.errors:
            match = _POLICY_ID.search(message)
            if match:
                failed.append((int(match.group(1)), match, message))
        return (
            _conclude(self.live, self._live_of, request, held, failed),
            _conclude(self.candidate, self._candidate_of, request, held, failed),
        )


def _conclude(
    policy: CompiledPolicy,
    owners: list[list[int]],
    request: PolicyRequest,
    held: list[int],
    failed: list[tuple[int, re.Match[str], str]],
) -> PolicyAnswer:
    """One policy's answer from the probe's: its own rules that held, as Cedar decides."""
    own = sorted(i for k in held for i in owners[k])
    forbids = [i for i in own if policy.rules[i].effect == "forbid"]
    errors = [
        (i, f"{message[: match.start()]}policy{i}{message[match.end() :]}")
        for k, match, message in failed
        for i in owners[k]
    ]
    if forbids:
        return policy.conclude(request, False, forbids, errors)
    return policy.conclude(request, bool(own), own, errors)
