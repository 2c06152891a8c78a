"""Admin API models for a project's shadow policy and the report of its differences."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tether.clock import iso_ms
from tether.store.policy_shadows import PolicyShadow

__all__ = ["DifferenceOut", "ExampleOut", "ShadowOut", "ShadowReportOut"]


class ShadowOut(BaseModel):
    project: str
    sha256: str
    source: str
    rules: int
    created_at: str | None
    created_by: str
    changed: bool = True
    warnings: list[str] = Field(
        default_factory=list, description="lint findings on the candidate (not errors)"
    )

    @classmethod
    def of(cls, shadow: PolicyShadow, project: str, rules: int, changed: bool = True) -> ShadowOut:
        return cls(
            project=project,
            sha256=shadow.sha256,
            source=shadow.source,
            rules=rules,
            created_at=iso_ms(shadow.created_at),
            created_by=shadow.created_by,
            changed=changed,
        )


class ExampleOut(BaseModel):
    at: str | None
    agent: str
    action: str
    resource: str
    live: str = Field(description="what the policy in force decided: allow, ask or deny")
    reason: str = Field(description="why the shadow would have decided otherwise")


class DifferenceOut(BaseModel):
    direction: str = Field(description="would_deny, would_allow or would_ask")
    rule: str = Field(description="the shadow's rule(s) behind its answer")
    count: int
    examples: list[ExampleOut]


class ShadowReportOut(BaseModel):
    shadow: ShadowOut
    policy_version: int = Field(description="the version in force beside it")
    since: str | None = Field(description="the start of the period reported")
    would_deny: int = Field(description="decisions the shadow would have denied")
    would_allow: int = Field(description="denied decisions the shadow would have allowed")
    would_ask: int = Field(description="allowed decisions the shadow would have sent to a human")
    differences: list[DifferenceOut]
