"""Settings, read once from the environment at start-up into a frozen dataclass."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tether.errors import ConfigError
from tether.records.budgets import BudgetPeriod
from tether.telemetry.otlp import OtlpSettings

__all__ = ["Settings"]

DEFAULT_PORT = 8080
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
DEFAULT_ANTHROPIC_URL = "https://api.anthropic.com"


def _int_setting(env: dict[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def _usd_setting(env: dict[str, str], name: str, default: float) -> float | None:
    """A dollar amount; ``off`` (or 0) for none."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if raw.lower() in ("off", "0", "none"):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an amount in USD (or 'off')") from None
    if value <= 0:
        raise ConfigError(f"{name}={value} must be more than 0 (or 'off')")
    return value


def _percent_setting(env: dict[str, str], name: str, default: float) -> float:
    """A percentage from 0 (off) to 100."""
    raw = (env.get(name) or "").strip().rstrip("%")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a percentage (0 turns it off)") from None
    if not 0 <= value <= 100:
        raise ConfigError(f"{name}={value} must be between 0 and 100")
    return value


def _choice_setting(env: dict[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = (env.get(name) or default).strip().upper()
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


def _bool_setting(env: dict[str, str], name: str, default: bool = False) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name}={raw!r} must be 1 or 0")


def _url_setting(env: dict[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name}={value!r} must be an http:// or https:// URL")
    return value.rstrip("/")


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration_setting(env: dict[str, str], name: str) -> float | None:
    """``30s``, ``5m``, ``1h``, ``1d`` or plain seconds; unset for none."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return None
    number, unit = (raw[:-1], raw[-1]) if raw[-1] in DURATION_UNITS else (raw, "s")
    try:
        seconds = float(number) * DURATION_UNITS[unit]
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a duration such as 30s, 5m or 1h") from None
    if seconds <= 0:
        raise ConfigError(f"{name}={raw!r} must be more than 0")
    return seconds


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")


def _choice(env: dict[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(name) or default
    if value.upper() not in (c.upper() for c in choices):
        raise ConfigError(f"{name}={value!r} must be one of: {', '.join(choices)}")
    return value


POSTGRES_SCHEMES = ("postgres://", "postgresql://")


def _database_url(url: str) -> str:
    """The usual ``postgres://`` / ``postgresql://`` URLs run on tether's driver, asyncpg."""
    if url.startswith(POSTGRES_SCHEMES):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url and not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ConfigError(
            "TETHER_DATABASE_URL must start with postgresql://, postgres://, "
            "postgresql+asyncpg:// or sqlite+aiosqlite://"
        )
    return url


def _redis_url(url: str) -> str | None:
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("TETHER_REDIS_URL must start with redis://, rediss:// or unix://")
    return url or None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything tether reads from its environment; the hot path never re-reads it."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path = Path.home() / ".tether"
    database_url: str = ""
    master_key: str | None = None
    bootstrap_admin_token: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    change_poll_seconds: float = 0.25
    anthropic_base_url: str = DEFAULT_ANTHROPIC_URL
    upstream_connect_timeout: float = 10.0
    upstream_read_timeout: float = 600.0
    stream_keepalive_seconds: float = 15.0
    """A relayed stream quiet this long gets a ``ping`` (Claude Code drops one silent for
    300 s); 0 sends none."""
    prices_file: Path | None = None
    alert_retry_base_seconds: float = 2.0
    approval_reap_seconds: float = 10.0
    shutdown_grace_seconds: float = 10.0
    """On SIGTERM, how long calls in flight may finish before they are cut (and settled)."""
    metrics_token: str | None = None
    """``GET /metrics`` accepts ``Authorization: Bearer <it>`` (or an admin token)."""
    metrics_public: bool = False
    """``GET /metrics`` without any token: only when the operator says so."""
    header_timeout: float = 10.0
    """Seconds a connection has to deliver a complete request head."""
    body_timeout: float = 60.0
    """Seconds a request has to deliver its whole body."""
    keepalive_timeout: float = 75.0
    max_connections: int = 1024
    sqlite_synchronous: str = "FULL"
    """FULL: a decision is on disk (WAL fsynced) before it is answered; NORMAL trades
    that for speed (the newest commits can be lost on power loss)."""
    sqlite_commit_on_loop: bool = True
    """A decision's brief writes commit on the event loop's thread, the WAL synced by a
    helper process (``SqliteWriter.commit_on_loop``); off: every commit on the writer
    thread."""
    sessions_in_memory: int = 25_000
    """Sessions kept in memory (cache, conversation index; half as many guard memories),
    least recently used forgotten; the store keeps each one's state
    (``TETHER_SESSIONS_IN_MEMORY``). 25,000 keeps a fleet's mix under 300 MiB and holds
    every conversation of a million sessions a day within its 30-minute idle window
    (``docs/benchmarks.md``)."""
    refusal_sample_seconds: float = 60.0
    """At most one audit event per client address per this many seconds for requests
    refused without a valid agent key (all are counted in the metrics)."""
    default_session_limit_usd: float | None = 5.0
    default_daily_budget_usd: float | None = 50.0
    budget_lease_percent: float = 2.0
    budget_hold_seconds: int = 0
    """How long a reservation (or a lease) holds without a word from its process before it
    becomes unsettled; 0: the upstream read timeout plus a minute."""
    """Each process holds this share of a budget's limit as a lease and serves calls from
    it in memory (``tether.budgets.leases``); 0: a transaction per call."""
    """What a new project is given unless its creator opts out (None: not given)."""

    def default_budgets(self) -> list[tuple[BudgetPeriod, float]]:
        wanted = [
            (BudgetPeriod.SESSION, self.default_session_limit_usd),
            (BudgetPeriod.DAILY, self.default_daily_budget_usd),
        ]
        return [(period, limit) for period, limit in wanted if limit is not None]

    audit_anchor_every: float | None = None
    """Seconds between signed anchors of the audit chain head (None: not kept)."""
    audit_anchor_dest: str | None = None
    """Where anchors are written: a directory or ``s3://bucket/prefix``."""
    drill_every: float | None = None
    """Seconds between scheduled fire drills of every project (``TETHER_DRILL_EVERY``)."""
    otlp: OtlpSettings | None = None
    """Spans sent over OTLP (``TETHER_OTLP_ENDPOINT``), or None: nothing is built or sent."""
    public_url: str | None = None
    """Where people reach this tether (``TETHER_PUBLIC_URL``): Slack approval messages
    link to its dashboard's approval page."""
    log_level: str = "INFO"
    log_format: str = "text"
    log_buffer_bytes: int = 4 << 20
    """Log lines held for a stderr that is not read fast enough before new ones are
    dropped (and counted); tether never waits for stderr (``TETHER_LOG_BUFFER_BYTES``)."""
    migrate: bool = True
    redis_url: str | None = None
    """Where the guards keep their per-session memory when several processes serve (None:
    in this process's memory)."""
    redis_prefix: str = "tether:"
    """Prefix of every Redis key tether writes (several fleets may share one Redis)."""
    reuse_port: bool = False
    """Listen with SO_REUSEPORT (the workers of ``tether up --workers N`` share the port)."""
    """False for replicas of a deployment that runs ``tether migrate`` once itself."""

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'tether.db'}"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("TETHER_DATA_DIR") or Path.home() / ".tether").expanduser()
        url = _database_url(env.get("TETHER_DATABASE_URL", ""))
        anchor_every = _duration_setting(env, "TETHER_AUDIT_ANCHOR_EVERY")
        anchor_dest = env.get("TETHER_AUDIT_ANCHOR_DEST") or None
        if (anchor_every is None) != (anchor_dest is None):
            raise ConfigError(
                "TETHER_AUDIT_ANCHOR_EVERY and TETHER_AUDIT_ANCHOR_DEST go together: how "
                "often to sign the audit chain head, and where to write the anchors"
            )
        return cls(
            host=env.get("TETHER_HOST") or "127.0.0.1",
            port=_int_setting(env, "TETHER_PORT", DEFAULT_PORT),
            data_dir=data_dir,
            database_url=url,
            master_key=env.get("TETHER_MASTER_KEY") or None,
            bootstrap_admin_token=env.get("TETHER_ADMIN_TOKEN") or None,
            max_body_bytes=_int_setting(
                env, "TETHER_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, minimum=1024
            ),
            max_message_bytes=_int_setting(
                env, "TETHER_MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES, minimum=1024
            ),
            anthropic_base_url=_url_setting(
                env, "TETHER_ANTHROPIC_BASE_URL", DEFAULT_ANTHROPIC_URL
            ),
            upstream_connect_timeout=_int_setting(env, "TETHER_UPSTREAM_CONNECT_TIMEOUT", 10, 1),
            upstream_read_timeout=_int_setting(env, "TETHER_UPSTREAM_READ_TIMEOUT", 600, 1),
            stream_keepalive_seconds=_int_setting(env, "TETHER_STREAM_KEEPALIVE_SECONDS", 15),
            prices_file=Path(env["TETHER_PRICES_FILE"]) if env.get("TETHER_PRICES_FILE") else None,
            alert_retry_base_seconds=_int_setting(env, "TETHER_ALERT_RETRY_BASE_SECONDS", 2, 1),
            approval_reap_seconds=_int_setting(env, "TETHER_APPROVAL_REAP_SECONDS", 10, 1),
            shutdown_grace_seconds=_int_setting(env, "TETHER_SHUTDOWN_GRACE_SECONDS", 10, 0),
            metrics_token=env.get("TETHER_METRICS_TOKEN") or None,
            default_session_limit_usd=_usd_setting(env, "TETHER_DEFAULT_SESSION_LIMIT_USD", 5.0),
            default_daily_budget_usd=_usd_setting(env, "TETHER_DEFAULT_DAILY_BUDGET_USD", 50.0),
            budget_lease_percent=_percent_setting(env, "TETHER_BUDGET_LEASE_PERCENT", 2.0),
            budget_hold_seconds=_int_setting(env, "TETHER_BUDGET_HOLD_SECONDS", 0, 0),
            public_url=_url_setting(env, "TETHER_PUBLIC_URL", "")
            if env.get("TETHER_PUBLIC_URL")
            else None,
            log_level=_choice(env, "TETHER_LOG_LEVEL", LOG_LEVELS, "INFO").upper(),
            log_format=_choice(env, "TETHER_LOG_FORMAT", LOG_FORMATS, "text").lower(),
            log_buffer_bytes=_int_setting(env, "TETHER_LOG_BUFFER_BYTES", 4 << 20, 4096),
            metrics_public=_bool_setting(env, "TETHER_METRICS_PUBLIC"),
            header_timeout=_int_setting(env, "TETHER_HEADER_TIMEOUT", 10, 1),
            body_timeout=_int_setting(env, "TETHER_BODY_TIMEOUT", 60, 1),
            keepalive_timeout=_int_setting(env, "TETHER_KEEPALIVE_TIMEOUT", 75, 1),
            max_connections=_int_setting(env, "TETHER_MAX_CONNECTIONS", 1024, 1),
            refusal_sample_seconds=_int_setting(env, "TETHER_REFUSAL_SAMPLE_SECONDS", 60, 1),
            sessions_in_memory=_int_setting(env, "TETHER_SESSIONS_IN_MEMORY", 25_000, 2),
            audit_anchor_every=anchor_every,
            drill_every=_duration_setting(env, "TETHER_DRILL_EVERY"),
            audit_anchor_dest=anchor_dest,
            otlp=OtlpSettings.from_env(env["TETHER_OTLP_ENDPOINT"], env)
            if env.get("TETHER_OTLP_ENDPOINT")
            else None,
            sqlite_synchronous=_choice_setting(
                env, "TETHER_SQLITE_SYNCHRONOUS", ("FULL", "NORMAL"), "FULL"
            ),
            sqlite_commit_on_loop=_bool_setting(env, "TETHER_SQLITE_COMMIT_ON_LOOP", True),
            redis_url=_redis_url(env.get("TETHER_REDIS_URL", "")),
            redis_prefix=env.get("TETHER_REDIS_PREFIX") or "tether:",
        )
