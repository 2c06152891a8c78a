"""The fleet as stored: projects, agents, their keys and sessions, as plain frozen dataclasses
(the store hands these out; the domain reads them; no ORM objects leave the store)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "PROBE_SESSION_PREFIX",
    "ActivityDelta",
    "AdminToken",
    "Agent",
    "AgentAwsKey",
    "AgentKey",
    "AgentState",
    "CredentialInfo",
    "Project",
    "Role",
    "SessionRecord",
    "SessionState",
]


PROBE_SESSION_PREFIX = "tether-probe-"
"""The sessions `tether policy probe` runs in: its refused `aws s3 rb` is no agent's work."""


class AgentState(StrEnum):
    ACTIVE = "active"
    STOPPED = "stopped"
    QUARANTINED = "quarantined"
    REVOKED = "revoked"


class SessionState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    TERMINATED = "terminated"
    BUDGET_EXHAUSTED = "budget_exhausted"


class Role(StrEnum):
    ADMIN = "admin"
    VIEWER = "viewer"


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    paused: bool
    created_at: int
    upstream_base_url: str | None = None
    timezone: str = "UTC"
    state_by: str | None = None
    state_reason: str | None = None
    state_at: int | None = None
    deletion_approval: bool = True
    """Every deletion waits for a human approval, whatever the policy allows."""
    unknown_command: str = "deny"
    """What a shell command tether cannot understand gets: ``deny`` or ``ask`` (approval)."""
    approval_ttl_seconds: int = 3600
    """How long a pending approval waits, and how long an approval may be used."""
    guards: str = ""
    """The project's guard thresholds as JSON (``tether.guards.settings``); empty: defaults."""
    drift: str = ""
    """The project's drift settings as JSON (``tether.tasks.settings``); empty: defaults."""


@dataclass(frozen=True, slots=True)
class Agent:
    id: str
    name: str
    project_id: str
    state: AgentState
    description: str
    created_at: int
    updated_at: int
    state_by: str | None = None
    state_reason: str | None = None


@dataclass(frozen=True, slots=True)
class AgentKey:
    id: str
    agent_id: str
    key_hash: str
    prefix: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    last_used_at: int | None = None


@dataclass(frozen=True, slots=True)
class AdminToken:
    id: str
    name: str
    token_hash: str
    prefix: str
    role: Role
    created_at: int
    revoked_at: int | None


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    """What may be shown about an upstream credential: never the secret itself."""

    project_id: str
    provider: str
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    agent_id: str
    project_id: str
    state: SessionState
    created_at: int
    last_activity_at: int
    request_count: int
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    cost_micros: int = 0
    state_by: str | None = None
    state_reason: str | None = None
    state_at: int | None = None


@dataclass(slots=True)
class ActivityDelta:
    """Counters a session gained since the last flush (requests, tokens, cost)."""

    last_activity_at: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_read_tokens: int = 0
    cost_micros: int = 0

    def merge(self, other: ActivityDelta) -> None:
        self.last_activity_at = max(self.last_activity_at, other.last_activity_at)
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cache_creation_tokens += other.cache_creation_tokens
        self.cache_read_tokens += other.cache_read_tokens
        self.cost_micros += other.cost_micros


@dataclass(frozen=True, slots=True)
class AgentAwsKey:
    """An agent's AWS access key pair for the broker; the secret stays sealed here."""

    id: str
    agent_id: str
    access_key_id: str
    sealed_secret: bytes = field(repr=False)
    created_at: int
    revoked_at: int | None
