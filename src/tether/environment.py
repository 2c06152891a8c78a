"""Every ``TETHER_*`` environment variable, its default and meaning, declared once.

The configuration reference (``docs/reference/configuration.md``) is generated from this
table at documentation build time, and a test fails when a variable read anywhere in
``src/tether`` is missing here or has no meaning: the manual cannot drift from the code.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ENVIRONMENT", "EnvVar"]


@dataclass(frozen=True, slots=True)
class EnvVar:
    """One row of the reference: the variables it covers, their default, what they do."""

    names: tuple[str, ...]
    default: str
    meaning: str


ENVIRONMENT: tuple[EnvVar, ...] = (
    EnvVar(
        ("TETHER_HOST", "TETHER_PORT"),
        "`127.0.0.1`, `8080`",
        ("where `tether up` listens"),
    ),
    EnvVar(
        ("TETHER_DATA_DIR",),
        "`~/.tether`",
        (
            "SQLite file, master key file, saved admin token; made 0700 at start (the SQLite "
            "database, WAL and SHM files are 0600)"
        ),
    ),
    EnvVar(
        ("TETHER_DATABASE_URL",),
        "SQLite in the data dir",
        (
            "`postgresql://user@host/db` (or `postgres://…`, `postgresql+asyncpg://…`) for "
            "production and several replicas; one `tether up` per SQLite database (a second is "
            "refused)"
        ),
    ),
    EnvVar(
        ("TETHER_MASTER_KEY",),
        "generated `master.key` (0600)",
        ("base64 of 32 bytes; encrypts upstream credentials (AES-256-GCM)"),
    ),
    EnvVar(
        ("TETHER_ADMIN_TOKEN",),
        "—",
        (
            "on the server: make this value an admin token (deployments); for the CLI: the token "
            "to use"
        ),
    ),
    EnvVar(
        ("TETHER_URL",),
        "`http://127.0.0.1:8080`",
        ("where the CLI finds tether"),
    ),
    EnvVar(
        ("TETHER_MAX_BODY_BYTES",),
        "`1048576`",
        ("body limit of `/v1/authorize` and the admin API"),
    ),
    EnvVar(
        ("TETHER_MAX_MESSAGE_BYTES",),
        "`33554432`",
        ("body limit of `/v1/messages`"),
    ),
    EnvVar(
        ("TETHER_ANTHROPIC_BASE_URL",),
        "`https://api.anthropic.com`",
        ("default upstream (per project: `tether projects set-upstream`)"),
    ),
    EnvVar(
        ("TETHER_UPSTREAM_CONNECT_TIMEOUT", "TETHER_UPSTREAM_READ_TIMEOUT"),
        "`10`, `600`",
        ("seconds; past them: 502 / 504"),
    ),
    EnvVar(
        ("TETHER_STREAM_KEEPALIVE_SECONDS",),
        "`15`",
        (
            "a relayed stream quiet this long (a tool call held while it is judged, a slow "
            "upstream) gets a `ping` event; Claude Code drops a stream silent for 300 s; "
            "`0` sends none"
        ),
    ),
    EnvVar(
        ("TETHER_APPROVAL_REAP_SECONDS",),
        "`10`",
        ("how often lapsed approvals are marked `expired` (and audited)"),
    ),
    EnvVar(
        ("TETHER_SHUTDOWN_GRACE_SECONDS",),
        "`10`",
        (
            "on SIGTERM, tether stops accepting, lets calls in flight finish this long, then cuts "
            "them; every call is settled (charged as a cut answer, recorded) before the audit log "
            "stops"
        ),
    ),
    EnvVar(
        ("TETHER_BUDGET_HOLD_SECONDS",),
        "read timeout + 60",
        (
            "a reservation or lease with no word from its process this long becomes unsettled (a "
            "crash)"
        ),
    ),
    EnvVar(
        ("TETHER_DEFAULT_SESSION_LIMIT_USD", "TETHER_DEFAULT_DAILY_BUDGET_USD"),
        "`5`, `50`",
        ("the per-session limit and daily budget a new project is given (`off` for none)"),
    ),
    EnvVar(
        ("TETHER_BUDGET_LEASE_PERCENT",),
        "`2`",
        (
            "each process leases this share of a budget's limit and serves calls from it in "
            "memory (see Budgets); `0`: one reservation transaction per call"
        ),
    ),
    EnvVar(
        ("TETHER_LOG_LEVEL",),
        "`INFO`",
        (
            "`DEBUG`, `INFO`, `WARNING` or `ERROR`; at `INFO`: one access line per request "
            "(method, path, status, duration, agent, session — never a key or query string), and "
            "every kill, pause, guard trip, budget stop and policy change"
        ),
    ),
    EnvVar(
        ("TETHER_LOG_FORMAT",),
        "`text`",
        (
            "`json`: one JSON object per line on stderr (`ts`, `level`, `logger`, `message`, and "
            "the access line's fields as keys)"
        ),
    ),
    EnvVar(
        ("TETHER_LOG_BUFFER_BYTES",),
        "`4194304` (4 MiB)",
        (
            "Log lines held for a stderr that is not read fast enough; past it new lines are "
            "dropped and counted (tether never waits for stderr)"
        ),
    ),
    EnvVar(
        ("TETHER_METRICS_TOKEN",),
        "unset",
        (
            "`GET /metrics` accepts `Authorization: Bearer <it>` (an admin token works too; 401 "
            "otherwise)"
        ),
    ),
    EnvVar(
        ("TETHER_METRICS_PUBLIC",),
        "`0`",
        ("`1` opens `GET /metrics` without any token"),
    ),
    EnvVar(
        ("TETHER_HEADER_TIMEOUT",),
        "`10`",
        (
            "seconds a connection has to send a complete request head (from connecting, or from "
            "its first byte after a response); then it is closed"
        ),
    ),
    EnvVar(
        ("TETHER_BODY_TIMEOUT",),
        "`60`",
        ("seconds a request has to send its whole body (408 `request_timeout` otherwise)"),
    ),
    EnvVar(
        ("TETHER_KEEPALIVE_TIMEOUT",),
        "`75`",
        ("seconds an idle keep-alive connection is kept"),
    ),
    EnvVar(
        ("TETHER_MAX_CONNECTIONS",),
        "`1024`",
        (
            "open connections per process; over it a new connection gets 503 "
            "`too_many_connections` and is closed"
        ),
    ),
    EnvVar(
        ("TETHER_REFUSAL_SAMPLE_SECONDS",),
        "`60`",
        (
            "requests refused for a missing or invalid agent key: at most one audit event per "
            "client address per this many seconds, carrying the count (every one is counted in "
            "`tether_unauthenticated_refusals_total`)"
        ),
    ),
    EnvVar(
        ("TETHER_SESSIONS_IN_MEMORY",),
        "`25000`",
        (
            "sessions a process keeps in memory (the session cache and the index of "
            "conversations without a session header; half as many sessions' guard memories), "
            "least recently used forgotten. A forgotten session that comes back is read again "
            "from the store: a killed or paused session stays so, its spend and budget are "
            "kept; only its guards' memory of recent calls starts afresh"
        ),
    ),
    EnvVar(
        ("TETHER_SQLITE_SYNCHRONOUS",),
        "`FULL`",
        (
            "SQLite only. `FULL`: the WAL is fsynced at every commit, so an answered decision "
            "survives a power loss. `NORMAL`: fsync only at checkpoints (≈0.4 ms less per commit, "
            "measured below), and the newest commits can be lost on power loss (not on a crash of "
            "tether)"
        ),
    ),
    EnvVar(
        ("TETHER_SQLITE_COMMIT_ON_LOOP",),
        "`1`",
        (
            "SQLite only. `1`: a call's own writes (its audit events, a new session's row, a "
            "budget hold) commit on the event loop's thread, and a helper process "
            "(`wal_sync_helper.py`, one per `tether up`) fsyncs the WAL before the call is "
            "answered, so with `FULL` an answered decision is still on disk; no thread is woken "
            "a call, which a busy machine made wait. Larger writes, a backlog and a write lock "
            "held elsewhere go to the writer thread. `0`: every commit on the writer thread"
        ),
    ),
    EnvVar(
        ("TETHER_REDIS_URL",),
        "unset",
        (
            "`redis://host:6379/0`: the guards keep each session's memory (repeats, tool answers, "
            "failures, progress) and each project's circuit breaker in Redis, shared by every "
            "process (`tether up --workers N`, replicas), so a loop trips at the same call "
            "wherever its requests land. Unset: in the process's memory. **Redis unreachable: "
            "guarded calls are refused** (503 `guard_state_unavailable`, `/readyz` says "
            "`guards`), never let through unguarded"
        ),
    ),
    EnvVar(
        ("TETHER_REDIS_PREFIX",),
        "`tether:`",
        ("prefix of tether's Redis keys (fleets sharing one Redis)"),
    ),
    EnvVar(
        ("TETHER_PUBLIC_URL",),
        "unset",
        (
            "where people reach tether (`https://tether.example.com`); approval messages then "
            "link to the dashboard's approval page (Slack: in the text; generic webhooks: "
            "`approval_url`)"
        ),
    ),
    EnvVar(
        ("TETHER_PRICES_FILE",),
        "built-in table",
        (
            'JSON `{"models": {"claude-x": {"input": 3, "output": 15, "cache_write_5m": …, '
            '"cache_write_1h": …, "cache_read": …}}, "fallback": {…}}`, USD per million tokens'
        ),
    ),
    EnvVar(
        ("TETHER_ALERT_RETRY_BASE_SECONDS",),
        "`2`",
        (
            "seconds before the first retry of an alert delivery that failed (Slack, webhook); "
            "each retry waits twice as long"
        ),
    ),
    EnvVar(
        ("TETHER_AUDIT_ANCHOR_EVERY", "TETHER_AUDIT_ANCHOR_DEST"),
        "unset",
        (
            "how often (`30s`, `5m`, `1h`) tether signs the audit chain head, and where the "
            "anchors go (a directory or `s3://bucket/prefix`); set both or neither (see "
            "[Operations](operations.md))"
        ),
    ),
    EnvVar(
        ("TETHER_DRILL_EVERY",),
        "unset",
        (
            "run every fire drill on every unpaused project this often (`7d`; see "
            "[Readiness](readiness.md))"
        ),
    ),
    EnvVar(
        ("TETHER_OTLP_ENDPOINT",),
        "unset",
        (
            "send spans over OTLP to this endpoint (needs the `otel` extra); unset: nothing is "
            "built or sent (see [Metrics, traces and logs](observability.md))"
        ),
    ),
    EnvVar(
        ("TETHER_OTLP_PROTOCOL",),
        "`http/protobuf`",
        ("`grpc` or `http/protobuf` (or the standard `OTEL_EXPORTER_OTLP_PROTOCOL`)"),
    ),
    EnvVar(
        ("TETHER_KEY",),
        "—",
        (
            "on an agent's machine: the agent's tether key that `tether hook` and "
            "`tether connect` settings read "
            "(`apiKeyHelper`, the hooks' `Authorization` header)"
        ),
    ),
    EnvVar(
        ("TETHER_AGENT_KEY",),
        "—",
        ("on an agent's machine: the agent key `tether policy probe` sends (`--key`)"),
    ),
)
