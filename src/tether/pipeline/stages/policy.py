"""Stage 4: blast radius. The project's Cedar policy decides; nothing is permitted that no
policy permits. A rule marked ``@ask`` hands the action to the approval stage.

A project's shadow policy is asked the same question beside it; where its answer differs,
the decision's audit event says what it would have decided (``shadow``), and nothing else
changes.

An action the front door could not understand (an unparseable command) gets the
project's ``unknown_command`` default unless a policy names it explicitly.
"""

from __future__ import annotations

from tether.pipeline.action import Action, Context, Deny, Verdict
from tether.policy.book import PolicyBook
from tether.policy.compiled import MODEL_ACCESS, PolicyAnswer
from tether.policy.request import PolicyRequest

__all__ = ["EnforcePolicy"]


def _request(action: Action, ctx: Context) -> PolicyRequest:
    assert ctx.identity is not None
    return PolicyRequest(
        agent=ctx.identity.agent.name,
        project=ctx.identity.project.name,
        action=action.action,
        resource=action.resource,
        tags=action.tags,
        source=action.source,
        session=ctx.session.id if ctx.session else "",
        arguments=action.arguments,
    )


def _effect(answer: PolicyAnswer, action: Action, unknown_command: str) -> str:
    """What the stage makes of an answer: allow, ask or deny (an unknown command no rule
    names gets the project's default)."""
    if answer.effect == "deny" and not action.understood and not answer.rules:
        return "ask" if unknown_command == "ask" else "deny"
    return answer.effect


def _compare(answer: PolicyAnswer, live: str, action: Action, ctx: Context) -> None:
    """The shadow's answer, kept on the decision's audit event where it differs."""
    assert ctx.identity is not None
    effect = _effect(answer, action, ctx.identity.project.unknown_command)
    if effect != live:
        ctx.notes["shadow"] = {
            "decision": effect,
            "live": live,
            "rules": list(answer.rules),
            "reason": answer.reason,
        }


class EnforcePolicy:
    def __init__(self, book: PolicyBook) -> None:
        self._book = book

    async def check(self, action: Action, ctx: Context) -> Verdict | None:
        assert ctx.identity is not None
        project = ctx.identity.project
        in_force = self._book.in_force(project.id)
        ctx.notes["policy_version"] = in_force.version
        if in_force.compiled is None:
            return Deny(
                "policy_unavailable",
                f"project {project.name}'s policy v{in_force.version} cannot be evaluated "
                f"({in_force.problem}); denied until a valid policy is applied",
            )
        if action.unmapped:
            return Deny("operation_not_mapped", f"{action.unmapped}; denied")
        if action.too_complex:
            return Deny("command_too_complex", f"{action.too_complex}; denied")
        pair = None if ctx.preview else self._book.shadow_pair(project.id)
        if in_force.compiled.models_always_allowed and action.action.startswith("model:"):
            ctx.allowed_because = MODEL_ACCESS.reason
            if pair is not None and not pair.candidate.models_always_allowed:
                _compare(pair.candidate.evaluate(_request(action, ctx)), "allow", action, ctx)
            return None
        request = _request(action, ctx)
        if pair is None:
            answer = in_force.compiled.evaluate(request)
        else:
            answer, shadow = pair.evaluate(request)
            _compare(shadow, _effect(answer, action, project.unknown_command), action, ctx)
        if answer.rules:
            ctx.notes["policy_rules"] = list(answer.rules)
        if answer.effect == "deny":
            if (
                ctx.preview
                and action.attributes.get("any_arguments")
                and not answer.rules
                and in_force.compiled.may_permit_with_arguments(action.action)
            ):
                return None
            if not action.understood and not answer.rules:
                return self._unknown(action, ctx, project.unknown_command)
            return Deny("policy_denied", answer.reason)
        if answer.effect == "ask":
            ctx.approval_needed = answer.reason
        ctx.allowed_because = answer.reason
        return None

    @staticmethod
    def _unknown(action: Action, ctx: Context, default: str) -> Verdict | None:
        what = action.attributes.get("not_understood", "tether could not tell what it does")
        if default == "ask":
            ctx.approval_needed = f"{what}; the project asks a human for such commands"
            return None
        return Deny(
            "command_not_understood",
            f"{what}; the project denies commands it cannot check "
            "(permit them explicitly in the policy, or set unknown_command to ask)",
        )
