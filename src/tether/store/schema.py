"""The tables. Timestamps are UTC epoch milliseconds (BigInteger) on both backends."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

__all__ = [
    "HOOK_CLOUD",
    "admin_tokens",
    "agent_aws_keys",
    "agent_key_addresses",
    "agent_keys",
    "agents",
    "approvals",
    "audit_chain",
    "audit_events",
    "audit_signing_key",
    "budget_alerts",
    "budget_periods",
    "budget_reservations",
    "budgets",
    "change_log",
    "controls",
    "credentials",
    "metadata",
    "outbox",
    "policies",
    "policy_shadows",
    "projects",
    "sessions",
    "slack_approvers",
    "slack_seen_requests",
    "slack_settings",
    "task_batches",
    "task_checkpoints",
    "tasks",
    "webhooks",
]

HOOK_CLOUD = "source = 'claude_code_hook' AND resource LIKE 'arn:%'"
"""Cloud calls Claude Code's hooks saw (an ``aws`` command acts on an ARN): a partial index
keeps "which agents ran cloud commands this week" to those few events. Queries repeat it
verbatim, so SQLite sees the index applies."""

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

projects = Table(
    "projects",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("paused", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    Column("upstream_base_url", String(512), nullable=True),
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    Column("state_by", String(96), nullable=True),
    Column("state_reason", Text, nullable=True),
    Column("state_at", BigInteger, nullable=True),
    Column("deletion_approval", Boolean, nullable=False, server_default="1"),
    Column("unknown_command", String(16), nullable=False, server_default="deny"),
    Column("approval_ttl_seconds", Integer, nullable=False, server_default="3600"),
    Column("guards", Text, nullable=False, server_default=""),
    Column("drift", Text, nullable=False, server_default=""),
)

agents = Table(
    "agents",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("state_by", String(96), nullable=True),
    Column("state_reason", Text, nullable=True),
)

agent_keys = Table(
    "agent_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("agent_id", String(32), ForeignKey("agents.id"), nullable=False, index=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("revoked_at", BigInteger, nullable=True),
    Column("last_used_at", BigInteger, nullable=True),
)

agent_key_addresses = Table(
    "agent_key_addresses",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("hour", BigInteger, primary_key=True),
    Column("address", String(64), primary_key=True),
    Column("uses", BigInteger, nullable=False),
    Column("switches", BigInteger, nullable=False),
    Index("ix_agent_key_addresses_hour", "hour"),
)
"""Which client addresses used each agent key, per hour (kept 8 days): ``switches`` counts
uses from this address right after a use from another one, the sign of a shared key."""

agent_aws_keys = Table(
    "agent_aws_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("agent_id", String(32), ForeignKey("agents.id"), nullable=False, index=True),
    Column("access_key_id", String(32), nullable=False, unique=True),
    Column("sealed_secret", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)

admin_tokens = Table(
    "admin_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)

credentials = Table(
    "credentials",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("sealed", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("project_id", "provider", name="uq_credentials_project_provider"),
)

mcp_servers = Table(
    "mcp_servers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("auth_kind", String(16), nullable=False),
    Column("sealed", LargeBinary, nullable=True),
    Column("pins", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("project_id", "name", name="uq_mcp_servers_project_name"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("agent_id", String(32), ForeignKey("agents.id"), nullable=False, index=True),
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False, index=True),
    Column("state", String(24), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_activity_at", BigInteger, nullable=False),
    Column("request_count", Integer, nullable=False, default=0),
    Column("input_tokens", BigInteger, nullable=False, server_default="0"),
    Column("output_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cache_creation_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cache_read_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cost_micros", BigInteger, nullable=False, server_default="0"),
    Column("state_by", String(96), nullable=True),
    Column("state_reason", Text, nullable=True),
    Column("state_at", BigInteger, nullable=True),
)

controls = Table(
    "controls",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_by", String(96), nullable=False),
    Column("reason", Text, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

audit_chain = Table(
    "audit_chain",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("base_seq", BigInteger, nullable=False, server_default="0"),
    Column("base_hash", String(64), nullable=False, server_default="0" * 64),
    # base: the last event removed by ``tether audit prune`` (0 and the genesis hash
    # until then); the first kept event's prev_hash is this hash.
)

audit_signing_key = Table(
    "audit_signing_key",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("public_key", String(64), nullable=False),
    Column("sealed_private_key", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("ts", BigInteger, nullable=False),
    Column("project_id", String(32), nullable=True),
    Column("agent_id", String(32), nullable=True),
    Column("agent_name", String(64), nullable=True),
    Column("session_id", String(128), nullable=True),
    Column("actor", String(96), nullable=False),
    Column("source", String(32), nullable=False),
    Column("action", String(128), nullable=False),
    Column("resource", Text, nullable=False),
    Column("result", String(16), nullable=False),
    Column("code", String(64), nullable=True),
    Column("reason", Text, nullable=False),
    Column("attributes", Text, nullable=False),
    Column("seq", BigInteger, nullable=True),
    Column("prev_hash", String(64), nullable=True),
    Column("hash", String(64), nullable=True),
    Index("ix_audit_events_seq", "seq", unique=True),
    Index("ix_audit_events_agent_ts", "agent_id", "ts"),
    Index("ix_audit_events_session_ts", "session_id", "ts"),
    Index("ix_audit_events_session_seq", "session_id", "seq"),
    Index("ix_audit_events_project_ts", "project_id", "ts"),
    Index("ix_audit_events_ts", "ts"),
    Index("ix_audit_events_project_action_ts", "project_id", "action", "ts"),
    Index(
        "ix_audit_events_hook_cloud",
        "project_id",
        "ts",
        sqlite_where=text(HOOK_CLOUD),
        postgresql_where=text(HOOK_CLOUD),
    ),
)

change_log = Table(
    "change_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("ref", String(128), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_change_log_created_at", "created_at"),
)

budgets = Table(
    "budgets",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False, index=True),
    Column("agent_id", String(32), ForeignKey("agents.id"), nullable=True),
    Column("scope", String(16), nullable=False),
    Column("period", String(16), nullable=False),
    Column("limit_micros", BigInteger, nullable=True),
    Column("limit_tokens", BigInteger, nullable=True),
    Column("thresholds", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(96), nullable=False),
    UniqueConstraint("project_id", "scope", "agent_id", "period", name="uq_budgets_definition"),
)

budget_periods = Table(
    "budget_periods",
    metadata,
    Column("budget_id", String(32), ForeignKey("budgets.id", ondelete="CASCADE"), primary_key=True),
    Column("period_key", String(128), primary_key=True),
    Column("spent_micros", BigInteger, nullable=False, server_default="0"),
    Column("reserved_micros", BigInteger, nullable=False, server_default="0"),
    Column("spent_tokens", BigInteger, nullable=False, server_default="0"),
    Column("reserved_tokens", BigInteger, nullable=False, server_default="0"),
    Column("period_end", BigInteger, nullable=True),
)

budget_reservations = Table(
    "budget_reservations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("budget_id", String(32), ForeignKey("budgets.id", ondelete="CASCADE"), primary_key=True),
    Column("period_key", String(128), nullable=False),
    Column("micros", BigInteger, nullable=False),
    Column("tokens", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False, index=True),
    Column("unsettled_at", BigInteger, nullable=True),
    Column("writes", BigInteger, nullable=False, server_default="0"),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("url", String(1024), nullable=False),
    Column("url_sealed", LargeBinary, nullable=True),
    Column("secret_sealed", LargeBinary, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(96), nullable=False),
)

budget_alerts = Table(
    "budget_alerts",
    metadata,
    Column("budget_id", String(32), ForeignKey("budgets.id", ondelete="CASCADE"), primary_key=True),
    Column("period_key", String(128), primary_key=True),
    Column("threshold", Integer, primary_key=True),
    Column("fired_at", BigInteger, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("webhook_id", String(32), ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", BigInteger, nullable=False, index=True),
    Column("claimed_until", BigInteger, nullable=True),
    Column("delivered_at", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("dead_at", BigInteger, nullable=True),
)

spend_daily = Table(
    "spend_daily",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("project_id", String(32), primary_key=True),
    Column("agent_id", String(32), primary_key=True),
    Column("requests", BigInteger, nullable=False, server_default="0"),
    Column("input_tokens", BigInteger, nullable=False, server_default="0"),
    Column("output_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cache_creation_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cache_read_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cost_micros", BigInteger, nullable=False, server_default="0"),
)

policies = Table(
    "policies",
    metadata,
    Column("project_id", String(32), ForeignKey("projects.id"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("source", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(96), nullable=False),
)

policy_shadows = Table(
    "policy_shadows",
    metadata,
    Column("project_id", String(32), ForeignKey("projects.id"), primary_key=True),
    Column("source", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(96), nullable=False),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False),
    Column("agent_id", String(32), ForeignKey("agents.id"), nullable=False),
    Column("session_id", String(128), nullable=False),
    Column("action", String(128), nullable=False),
    Column("resource", Text, nullable=False),
    Column("resource_key", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("attributes", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("requested_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("decided_at", BigInteger, nullable=True),
    Column("decided_by", String(96), nullable=True),
    Column("decision_reason", Text, nullable=True),
    Column("used_at", BigInteger, nullable=True),
    Column("scope_prefix", Text, nullable=True),
    Column("item_count", Integer, nullable=False, server_default="1"),
    Column("max_uses", Integer, nullable=True),
    Column("uses", Integer, nullable=False, server_default="0"),
    Index("ix_approvals_project_state", "project_id", "state"),
    Index("ix_approvals_request", "session_id", "action", "resource_key"),
)

slack_settings = Table(
    "slack_settings",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("signing_secret_sealed", LargeBinary, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(96), nullable=False),
)

slack_approvers = Table(
    "slack_approvers",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("team_id", String(32), nullable=False),
    Column("user_id", String(32), nullable=False),
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False),
    Column("operator", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(96), nullable=False),
    UniqueConstraint("team_id", "user_id", "project_id", name="uq_slack_approvers_team_id"),
)

slack_seen_requests = Table(
    "slack_seen_requests",
    metadata,
    Column("signature_hash", String(64), primary_key=True),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id"), nullable=False, index=True),
    Column("agent_id", String(32), ForeignKey("agents.id"), nullable=True),
    Column("session_id", String(128), nullable=True, index=True),
    Column("name", String(128), nullable=False),
    Column("definition", Text, nullable=False),
    Column("batch_count", Integer, nullable=False, server_default="0"),
    Column("state", String(24), nullable=False),
    Column("state_by", String(96), nullable=True),
    Column("state_reason", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(96), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

task_batches = Table(
    "task_batches",
    metadata,
    Column("task_id", String(32), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("state", String(16), nullable=False),
    Column("session_id", String(128), nullable=False),
    Column("claimed_at", BigInteger, nullable=False),
    Column("claimed_until", BigInteger, nullable=False),
    Column("completed_at", BigInteger, nullable=True),
    Column("results", Text, nullable=True),
    Column("verification", Text, nullable=True),
)

task_checkpoints = Table(
    "task_checkpoints",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("task_id", String(32), ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("session_id", String(128), nullable=True),
    Column("agent_id", String(32), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_task_checkpoints_task", "task_id", "created_at"),
)

message_batches = Table(
    "message_batches",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("project_id", String(32), nullable=False),
    Column("agent_id", String(32), nullable=False),
    Column("session_id", String(128), nullable=True),
    Column("reservation_id", String(32), nullable=True),
    Column("holds", Text, nullable=False),
    Column("models", Text, nullable=False),
    Column("reserved_micros", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("canceled_at", BigInteger, nullable=True),
    Column("settled_at", BigInteger, nullable=True),
    Column("settled_micros", BigInteger, nullable=True),
    Index("ix_message_batches_open", "settled_at", "agent_id"),
)
