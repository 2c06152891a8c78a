"""Admin API models for policy work against the audit trail: replay, suggest, lint."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from tether.admin.policy_schemas import MAX_POLICY_CHARS
from tether.admin.schemas import Strict

__all__ = [
    "ChangeOut",
    "FindingOut",
    "LintOut",
    "LintRun",
    "ReplayOut",
    "ReplayRun",
    "SuggestOut",
    "SuggestRun",
]

MAX_WINDOW_SECONDS = 400 * 86_400
Expectation = Annotated[
    str, Field(pattern=r"^(denied|allowed)[ \t]+[^ \t]+([ \t]+[^ \t]+)?$", max_length=1024)
]


class ReplayRun(Strict):
    source: str = Field(max_length=MAX_POLICY_CHARS, description="the candidate Cedar policy")
    since_seconds: int = Field(
        7 * 86_400, ge=1, le=MAX_WINDOW_SECONDS, description="replay decisions this far back"
    )
    expect: list[Expectation] = Field(
        default_factory=list,
        max_length=200,
        description="intended changes: 'denied|allowed ACTION_GLOB [RESOURCE_GLOB]'",
    )


class ChangeOut(BaseModel):
    agent: str
    action: str
    resource: str
    count: int
    now: str = Field(description="denied or allowed: the candidate's answer")
    reason: str


class ReplayOut(BaseModel):
    decisions: int = Field(description="decisions of the period replayed")
    distinct: int = Field(description="distinct requests among them (each evaluated once)")
    newly_denied_calls: int
    newly_allowed_calls: int
    newly_denied: list[ChangeOut]
    newly_allowed: list[ChangeOut]
    unexpected_total: int = Field(description="changes no --expect rule covers")
    unexpected: list[ChangeOut]
    seconds: float


class SuggestRun(Strict):
    since_seconds: int = Field(7 * 86_400, ge=1, le=MAX_WINDOW_SECONDS)
    agent: str | None = Field(None, description="only this agent's decisions")
    generalise: list[Literal["bucket", "prefix", "tag"]] = Field(
        default_factory=list, description="widen rules: bucket, prefix and/or tag"
    )


class SuggestOut(BaseModel):
    source: str
    rules: int
    covered_calls: int
    resources: int = Field(description="distinct resources the trail allowed")
    decisions: int


class LintRun(Strict):
    source: str | None = Field(
        None, max_length=MAX_POLICY_CHARS, description="a candidate (default: the policy in force)"
    )
    days: int = Field(
        30, ge=1, le=400, description="a rule that matched nothing this long is unused"
    )


class FindingOut(BaseModel):
    severity: str
    code: str
    line: int
    rule: str
    message: str


class LintOut(BaseModel):
    findings: list[FindingOut]
    errors: int
    warnings: int
