"""Admin API models for policies and policy tests."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tether.admin.schemas import Strict
from tether.clock import iso_ms
from tether.store.policies import PolicyVersion

__all__ = [
    "PolicyApply",
    "PolicyCheck",
    "PolicyOut",
    "Probe",
    "ProbeResult",
    "ProbeRun",
    "ProbeRunOut",
]

MAX_POLICY_CHARS = 256 * 1024


class PolicyApply(Strict):
    source: str = Field(max_length=MAX_POLICY_CHARS, description="the Cedar policy text")


class PolicyOut(BaseModel):
    project: str
    version: int
    sha256: str
    source: str
    rules: int
    created_at: str | None
    created_by: str
    changed: bool = True

    @classmethod
    def of(
        cls, version: PolicyVersion, project: str, rules: int, changed: bool = True
    ) -> PolicyOut:
        return cls(
            project=project,
            version=version.version,
            sha256=version.sha256,
            source=version.source,
            rules=rules,
            created_at=iso_ms(version.created_at),
            created_by=version.created_by,
            changed=changed,
        )


class PolicyCheck(BaseModel):
    valid: bool
    rules: int


class Probe(Strict):
    agent: str = Field(min_length=1, max_length=64)
    action: str = Field(min_length=1, max_length=128, examples=["s3:DeleteBucket"])
    resource: str = Field(max_length=4096, examples=["arn:aws:s3:::prod-data"])
    tags: dict[str, str] = Field(default_factory=dict)


class ProbeRun(Strict):
    probes: list[Probe] = Field(min_length=1, max_length=10_000)
    source: str | None = Field(
        None,
        max_length=MAX_POLICY_CHARS,
        description="a candidate policy to test instead of the one in force",
    )


class ProbeResult(BaseModel):
    decision: str = Field(description="allow, deny, or approval (needs a human approval)")
    reason: str
    rules: list[str]


class ProbeRunOut(BaseModel):
    policy_version: int | None = Field(description="the version tested; null for a candidate")
    results: list[ProbeResult]
