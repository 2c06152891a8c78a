"""One exception tree for tether: every error has a stable machine-readable ``code``.

HTTP statuses are assigned here and nowhere else (``status_for``), so the admin API,
the authorize endpoint and the gateways all answer the same code with the same status.
"""

from __future__ import annotations

__all__ = [
    "REDIS_TIMEOUT_SECONDS",
    "STATUS_BY_CODE",
    "AuditEventRejected",
    "AuthenticationFailed",
    "BadRequest",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "NotFound",
    "PayloadTooLarge",
    "PolicyInvalid",
    "RequestTimeout",
    "SharedStateUnavailable",
    "StoreUnavailable",
    "TaskInvalid",
    "TetherError",
    "status_for",
]

STATUS_BY_CODE: dict[str, int] = {
    # Refusals by tether's controls: 423 (a kill, a pause, a guard) and 402 (a budget).
    # Claude Code shows a 401/403 as "Failed to authenticate" and retries 400/422/5xx;
    # 402 and 423 it shows with tether's message as they are, and does not retry.
    "invalid_json": 400,
    "invalid_request": 400,
    "invalid_session_id": 400,
    "missing_credentials": 401,
    "invalid_key": 401,
    "expired_key": 401,
    "revoked_key": 401,
    "invalid_admin_token": 401,
    "invalid_metrics_token": 401,
    "slack_signature_invalid": 401,
    "slack_request_expired": 401,
    "slack_request_replayed": 401,
    "slack_not_configured": 503,
    "slack_user_not_mapped": 403,
    "slack_operator_not_allowed": 403,
    "forbidden": 403,
    "agent_key_on_admin_api": 403,
    "read_only_token": 403,
    "agent_quarantined": 423,
    "agent_stopped": 423,
    "project_paused": 423,
    "fleet_paused": 423,
    "agent_revoked": 423,
    "session_terminated": 423,
    "session_paused": 423,
    "session_budget_exhausted": 402,
    "budget_exceeded": 402,
    "budget_reservation_settled": 402,
    "session_not_owned": 403,
    "policy_denied": 403,
    "approval_denied": 403,
    "approval_pending": 403,
    "command_not_understood": 403,
    "command_too_complex": 403,
    "nothing_to_suggest": 409,
    "no_policy": 409,
    "no_shadow_policy": 404,
    "operation_not_mapped": 403,
    "aws_not_configured": 503,
    "aws_unavailable": 503,
    "gcp_not_configured": 503,
    "gcp_unavailable": 503,
    "repeated_call": 423,
    "repeated_tool_call": 423,
    "retry_limit": 423,
    "no_progress": 423,
    "unverified_tool_execution": 423,
    "upstream_circuit_open": 429,
    "shutting_down": 503,
    "heavy_work_busy": 503,
    "policy_unavailable": 503,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "approval_grew": 409,
    "payload_too_large": 413,
    "request_timeout": 408,
    "unsupported_media_type": 415,
    "policy_invalid": 422,
    "mcp_credential_invalid": 422,
    "task_invalid": 422,
    "task_not_active": 409,
    "batch_not_claimed": 409,
    "store_unavailable": 503,
    "guard_state_unavailable": 503,
    "no_upstream_credential": 503,
    "upstream_unreachable": 502,
    "upstream_timeout": 504,
    "audit_unavailable": 503,
    "audit_event_rejected": 400,
    "internal_error": 500,
    "mcp_tool_withheld": 403,
    "mcp_tool_unknown": 403,
    "mcp_oauth_failed": 502,
    "mcp_unavailable": 503,
}


def status_for(code: str) -> int:
    """The HTTP status for an error or deny code; unknown codes are client errors."""
    return STATUS_BY_CODE.get(code, 400)


class TetherError(Exception):
    """Root of every error tether raises on purpose; ``message`` says what to fix."""

    code = "internal_error"

    details: list[dict[str, object]] | None = None
    """Structured specifics a client can act on (e.g. each policy error's line and column)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    @property
    def status(self) -> int:
        return status_for(self.code)


class BadRequest(TetherError):
    code = "invalid_request"


class PayloadTooLarge(TetherError):
    code = "payload_too_large"


class RequestTimeout(TetherError):
    """The client did not send its body in time (slow or stalled uploads hold sockets)."""

    code = "request_timeout"


class AuthenticationFailed(TetherError):
    code = "invalid_key"


class Forbidden(TetherError):
    code = "forbidden"


class NotFound(TetherError):
    code = "not_found"


class Conflict(TetherError):
    code = "conflict"


class PolicyInvalid(TetherError):
    """A policy file that does not parse or validate; ``details`` lists each error's
    line, column and message. The version in force stays in force."""

    code = "policy_invalid"

    def __init__(self, message: str, errors: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.details = errors


class TaskInvalid(TetherError):
    """A task file that does not parse or validate; ``details`` lists each mistake's line,
    field and message."""

    code = "task_invalid"

    def __init__(self, message: str, errors: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.details = errors


class StoreUnavailable(TetherError):
    """The database could not answer; callers must fail closed."""

    code = "store_unavailable"


class SharedStateUnavailable(TetherError):
    """Redis, where replicas share guard memory and the conversation index, did not
    answer: the guards cannot judge and a call's session cannot be found, so it is refused."""

    code = "guard_state_unavailable"


REDIS_TIMEOUT_SECONDS = 2.0
"""How long a call waits on the shared state before it is refused (fail closed)."""


class AuditEventRejected(TetherError):
    """The database refused this call's audit event (the others in its batch were
    written): the call is refused, since nothing may act unrecorded."""

    code = "audit_event_rejected"


class ConfigError(TetherError):
    """Configuration is invalid; raised at start-up, naming the setting to fix."""

    code = "config_error"
