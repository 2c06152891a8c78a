"""Request and response bodies of the admin API (pydantic: validation and OpenAPI)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tether.admin.patches import not_null
from tether.admin.url_fields import HttpUrlText
from tether.clock import iso_ms
from tether.records.budgets import DEFAULT_THRESHOLDS, BudgetPeriod
from tether.records.fleet import (
    AdminToken,
    Agent,
    AgentKey,
    CredentialInfo,
    Project,
    Role,
    SessionRecord,
)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
NAME_HELP = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
MAX_GRACE_SECONDS = 30 * 24 * 3600


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectCreate(Strict):
    name: str = Field(pattern=NAME_PATTERN, description=NAME_HELP, examples=["payments"])
    default_budgets: bool = Field(
        True,
        description="give the project the default per-session limit and daily budget "
        "(TETHER_DEFAULT_SESSION_LIMIT_USD, TETHER_DEFAULT_DAILY_BUDGET_USD)",
    )


class ProjectOut(BaseModel):
    id: str
    name: str
    paused: bool
    paused_by: str | None
    paused_reason: str | None
    upstream_base_url: str | None
    timezone: str
    deletion_approval: bool
    unknown_command: str
    approval_ttl_seconds: int
    created_at: str | None

    @classmethod
    def of(cls, project: Project) -> ProjectOut:
        return cls(
            id=project.id,
            name=project.name,
            paused=project.paused,
            paused_by=project.state_by if project.paused else None,
            paused_reason=project.state_reason if project.paused else None,
            upstream_base_url=project.upstream_base_url,
            timezone=project.timezone,
            deletion_approval=project.deletion_approval,
            unknown_command=project.unknown_command,
            approval_ttl_seconds=project.approval_ttl_seconds,
            created_at=iso_ms(project.created_at),
        )


class AgentCreate(Strict):
    name: str = Field(pattern=NAME_PATTERN, description=NAME_HELP, examples=["claude-deploy-01"])
    project: str = Field(min_length=1, max_length=64, description="the project's name")
    description: str = Field("", max_length=1000)


class AgentOut(BaseModel):
    id: str
    name: str
    project: str
    state: str
    state_by: str | None
    state_reason: str | None
    description: str
    created_at: str | None
    updated_at: str | None

    @classmethod
    def of(cls, agent: Agent, project_name: str) -> AgentOut:
        return cls(
            id=agent.id,
            name=agent.name,
            project=project_name,
            state=agent.state.value,
            state_by=agent.state_by,
            state_reason=agent.state_reason,
            description=agent.description,
            created_at=iso_ms(agent.created_at),
            updated_at=iso_ms(agent.updated_at),
        )


class KeyOut(BaseModel):
    id: str
    prefix: str
    created_at: str | None
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None = Field(
        description="when the key last got a request through (written about once a second)"
    )

    @classmethod
    def of(cls, key: AgentKey) -> KeyOut:
        return cls(
            id=key.id,
            prefix=key.prefix,
            created_at=iso_ms(key.created_at),
            expires_at=iso_ms(key.expires_at),
            revoked_at=iso_ms(key.revoked_at),
            last_used_at=iso_ms(key.last_used_at),
        )


class IssuedKeyOut(BaseModel):
    agent: str
    key: str = Field(description="the agent key; shown this once, store it now")
    key_id: str
    prefix: str
    previous_keys_expire_at: str | None = None


class AgentCreated(BaseModel):
    agent: AgentOut
    key: str = Field(description="the agent key; shown this once, store it now")
    key_id: str


class RotateKey(Strict):
    grace_seconds: int = Field(
        0,
        ge=0,
        le=MAX_GRACE_SECONDS,
        description="how long the current keys keep working; 0 ends them now",
    )


class StateChange(Strict):
    reason: str = Field("", max_length=1000, description="why; shown to the agent's user")


def _known_zones(schema: dict[str, Any]) -> None:
    not_null(schema)
    schema["enum"] = sorted(available_timezones())


class ProjectUpdate(Strict):
    """Only the fields sent change; an empty object is refused (nothing to change)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    upstream_base_url: HttpUrlText | None = Field(
        None,
        max_length=512,
        description="where this project's model calls go; null for tether's default",
    )
    timezone: str | None = Field(
        None,
        max_length=64,
        description="IANA zone for daily and monthly budgets, e.g. Europe/Paris",
        json_schema_extra=_known_zones,
    )
    deletion_approval: bool | None = Field(
        None,
        description="every deletion waits for a human approval (default true)",
        json_schema_extra=not_null,
    )
    unknown_command: Literal["deny", "ask"] | None = Field(
        None,
        description="what shell commands tether cannot understand get: deny, or ask for approval",
        json_schema_extra=not_null,
    )
    approval_ttl_seconds: int | None = Field(
        None,
        ge=1,
        le=7 * 86400,
        description="how long approvals stay pending, and usable",
        json_schema_extra=not_null,
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"unknown time zone {value!r}; use an IANA name like UTC"
                ) from None
        return value


class PauseState(BaseModel):
    paused: bool
    by: str | None
    reason: str | None
    at: str | None


class CredentialPut(Strict):
    secret: str = Field(min_length=8, max_length=4096, description="the upstream API key")


class CredentialOut(BaseModel):
    project: str
    provider: str
    created_at: str | None
    updated_at: str | None

    @classmethod
    def of(cls, info: CredentialInfo, project_name: str) -> CredentialOut:
        return cls(
            project=project_name,
            provider=info.provider,
            created_at=iso_ms(info.created_at),
            updated_at=iso_ms(info.updated_at),
        )


class TokenCreate(Strict):
    name: str = Field(pattern=NAME_PATTERN, description=NAME_HELP)
    role: Role = Role.VIEWER


class TokenOut(BaseModel):
    name: str
    role: str
    prefix: str
    created_at: str | None
    revoked_at: str | None

    @classmethod
    def of(cls, token: AdminToken) -> TokenOut:
        return cls(
            name=token.name,
            role=token.role.value,
            prefix=token.prefix,
            created_at=iso_ms(token.created_at),
            revoked_at=iso_ms(token.revoked_at),
        )


class TokenCreated(BaseModel):
    token: TokenOut
    secret: str = Field(description="the admin token; shown this once")


class SessionOut(BaseModel):
    id: str
    agent: str | None
    project: str | None
    state: str
    state_by: str | None
    state_reason: str | None
    created_at: str | None
    last_activity_at: str | None
    request_count: int
    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int
    cache_read_tokens: int
    cost_usd: float

    @classmethod
    def of(cls, session: SessionRecord, agent: str | None, project: str | None) -> SessionOut:
        return cls(
            id=session.id,
            agent=agent,
            project=project,
            state=session.state.value,
            state_by=session.state_by,
            state_reason=session.state_reason,
            created_at=iso_ms(session.created_at),
            last_activity_at=iso_ms(session.last_activity_at),
            request_count=session.request_count,
            input_tokens=session.input_tokens,
            output_tokens=session.output_tokens,
            cache_creation_tokens=session.cache_creation_tokens,
            cache_read_tokens=session.cache_read_tokens,
            cost_usd=session.cost_micros / 1_000_000,
        )


class AuditEventOut(BaseModel):
    id: str
    ts: str | None
    project_id: str | None
    agent: str | None
    session_id: str | None
    actor: str
    source: str
    action: str
    resource: str
    result: str
    code: str | None
    reason: str
    attributes: dict[str, Any]
    seq: int | None
    hash: str | None


class ResultCountOut(BaseModel):
    start: str = Field(description="the bucket's start (buckets are aligned to the epoch)")
    result: str
    count: int


class ChainBreakOut(BaseModel):
    seq: int
    event_id: str
    problem: str


class ChainReportOut(BaseModel):
    intact: bool
    checked: int
    head_seq: int
    head_hash: str
    first_break: ChainBreakOut | None


class BudgetPut(Strict):
    """One budget: its scope follows from the fields (agent → agent budget; period
    ``session`` → a limit for every session of the project; else the project's)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["limit_usd"], "properties": {"limit_usd": {"type": "number"}}},
                {
                    "required": ["limit_tokens"],
                    "properties": {"limit_tokens": {"type": "integer"}},
                },
            ],
            "not": {
                "required": ["agent", "period"],
                "properties": {"agent": {"type": "string"}, "period": {"const": "session"}},
            },
        },
    )

    project: str = Field(min_length=1, max_length=64)
    agent: str | None = Field(None, min_length=1, max_length=64)
    period: BudgetPeriod
    limit_usd: float | None = Field(None, gt=0, le=10_000_000, description="USD, > 0")
    limit_tokens: int | None = Field(None, gt=0, description="tokens, > 0")
    thresholds: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=lambda: list(DEFAULT_THRESHOLDS),
        min_length=1,
        description="alert at these percentages of the limit",
    )

    @field_validator("thresholds")
    @classmethod
    def _percentages(cls, value: list[int]) -> list[int]:
        if not value or any(not 1 <= t <= 100 for t in value):
            raise ValueError("thresholds must be percentages from 1 to 100")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BudgetPut:
        if self.limit_usd is None and self.limit_tokens is None:
            raise ValueError("give limit_usd, limit_tokens or both")
        if self.agent is not None and self.period is BudgetPeriod.SESSION:
            raise ValueError("a per-session limit applies to a project's sessions, not to an agent")
        return self


class BudgetOut(BaseModel):
    id: str
    project: str
    agent: str | None
    scope: str
    period: str
    limit_usd: float | None
    limit_tokens: int | None
    thresholds: list[int]
    current_period: str | None
    spent_usd: float | None
    reserved_usd: float | None
    """Held by calls running now (and live leases); unsettled reservations apart."""
    unsettled_usd: float | None
    """Reserved by calls whose process died before settling them: counted against the
    limit, not spent, until settled (``POST /reservations/settle``)."""
    remaining_usd: float | None
    spent_tokens: int | None
    period_end: str | None
    updated_by: str


class UnsettledOut(BaseModel):
    reservation_id: str
    budget_id: str
    project: str
    period: str
    reserved_usd: float
    reserved_tokens: int
    unsettled_at: str | None
    charged_usd: float | None = None
    """Once settled: what was charged."""


class BudgetSettle(Strict):
    """Settle unsettled reservations: one (``reservation_id``) or all of a project's
    (``all_unsettled``), at what the call really cost (``usd``) or at what it reserved
    (``as_reserved``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "allOf": [
                {
                    "oneOf": [
                        {
                            "required": ["reservation_id"],
                            "properties": {"reservation_id": {"type": "string"}},
                        },
                        {
                            "required": ["all_unsettled"],
                            "properties": {"all_unsettled": {"const": True}},
                        },
                    ]
                },
                {
                    "oneOf": [
                        {"required": ["usd"], "properties": {"usd": {"type": "number"}}},
                        {
                            "required": ["as_reserved"],
                            "properties": {"as_reserved": {"const": True}},
                        },
                    ]
                },
                {
                    "not": {
                        "required": ["all_unsettled", "usd"],
                        "properties": {
                            "all_unsettled": {"const": True},
                            "usd": {"type": "number", "exclusiveMinimum": 0},
                        },
                    }
                },
            ]
        },
    )

    project: str = Field(min_length=1, max_length=64)
    reservation_id: str | None = Field(None, min_length=1, max_length=32)
    all_unsettled: bool = False
    usd: float | None = Field(
        None,
        ge=0,
        le=10_000_000,
        description="what the call really cost, USD (at most what it reserved)",
    )
    as_reserved: bool = False


class WebhookAdd(Strict):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"properties": {"kind": {"const": "slack"}}},
                {"required": ["secret"], "properties": {"secret": {"type": "string"}}},
            ]
        },
    )

    kind: str = Field(pattern=r"^(slack|generic)$", description="slack or generic (HMAC-signed)")
    url: HttpUrlText = Field(max_length=1024)
    secret: str | None = Field(
        None, min_length=16, max_length=256, description="generic hooks: the HMAC-SHA256 key"
    )


class DeliveryOut(BaseModel):
    id: str
    webhook_id: str
    event: str
    state: Literal["delivered", "retrying", "failed"]
    attempts: int
    created_at: str | None
    next_attempt_at: str | None
    finished_at: str | None
    last_error: str | None


class WebhookOut(BaseModel):
    id: str
    project: str
    kind: str
    url: str
    signed: bool
    created_at: str | None
    created_by: str


class ProjectCreated(ProjectOut):
    budgets: list[BudgetOut] = Field(description="the default budgets it was given")
