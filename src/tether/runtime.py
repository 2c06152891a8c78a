"""Everything one tether process holds, built once at start-up and torn down at exit."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy.engine import make_url

from tether.alerts.crossings import BudgetAlerts
from tether.alerts.dispatcher import OutboxDispatcher
from tether.approvals.decisions import ApprovalDecider
from tether.approvals.reaper import ApprovalReaper
from tether.approvals.waiter import ApprovalWaiter
from tether.audit import normalise
from tether.audit.appender import open_appender
from tether.audit.destinations import open_destination
from tether.audit.keeper import AnchorKeeper
from tether.audit.log import AuditLog, AuditWatcher, AuditWatchers
from tether.audit.signing_keys import AuditSigningKeys
from tether.audit.table import AuditStore
from tether.budgets.book import BudgetBook
from tether.budgets.leases import LeasedLedger
from tether.budgets.unsettled import RecordUnsettled
from tether.clock import now_ms
from tether.config import Settings
from tether.errors import ConfigError, Conflict
from tether.gateway.anthropic.upstream import AnthropicUpstream
from tether.gateway.aws.upstream import AwsUpstream
from tether.gateway.vertex.tokens import VertexTokens
from tether.guards.memory import GuardMemory, LocalGuardMemory
from tether.guards.responses import TripResponder
from tether.identity.directory import Directory
from tether.identity.key_use import KeyUse
from tether.identity.upstream_keys import UpstreamKeys
from tether.kill.batches import BatchCanceller
from tether.kill.controls import FleetControls
from tether.kill.inflight import InflightStreams
from tether.kill.switch import KillSwitch
from tether.mcp_servers.registry import McpRegistry
from tether.metrics.fleet import FleetGauges
from tether.metrics.instruments import TetherMetrics
from tether.metrics.memory import MemoryGauges
from tether.metrics.pauses import PauseWatch
from tether.metrics.sqlite_memory import SqliteMemoryGauge
from tether.metrics.sqlite_writer import SqliteWriterCounters
from tether.pipeline import Pipeline
from tether.pipeline.stages.budget import ReserveBudget
from tether.pipeline.stages.defaults import default_stages
from tether.pipeline.stages.guards import EnforceGuards
from tether.pipeline.stages.mcp_tools import EnforceToolPins
from tether.pipeline.stages.task_context import KeepTaskInView
from tether.policy.book import PolicyBook
from tether.pricing.prices import load_price_overrides
from tether.records.fleet import Role
from tether.redaction import text as redaction_text
from tether.sessions.conversations import Conversations
from tether.sessions.registry import SessionRegistry
from tether.slack.replies import SlackReplies
from tether.store.admin_tokens import AdminTokenStore
from tether.store.agents import AgentStore
from tether.store.alerts import AlertStore
from tether.store.approvals import ApprovalStore
from tether.store.aws_keys import AwsKeyStore
from tether.store.budget_ledger import BudgetLedger, open_ledger
from tether.store.budgets import BudgetStore
from tether.store.change_feed import ChangeFeed
from tether.store.controls import ControlStore
from tether.store.credentials import CredentialStore
from tether.store.database import Database
from tether.store.files import private_directory
from tether.store.fleet_state import FleetState
from tether.store.key_addresses import KeyAddressStore
from tether.store.mcp_servers import McpServerStore
from tether.store.message_batches import MessageBatchStore
from tether.store.migrate import pending_revision, upgrade
from tether.store.policies import PolicyStore
from tether.store.policy_shadows import PolicyShadowStore
from tether.store.projects import ProjectStore
from tether.store.sessions import SessionStore
from tether.store.slack import SlackStore
from tether.store.spend import SpendStore
from tether.store.sqlite_writer import SqliteWriter
from tether.store.tasks import TaskStore
from tether.store.webhooks import WebhookStore
from tether.tasks.desk import TaskDesk
from tether.tasks.drift import DriftWatch
from tether.tasks.marks import SessionMarks
from tether.telemetry.otlp import OtlpExport, open_otlp_export
from tether.vault.bearer import hash_secret
from tether.vault.master_key import load_master_key
from tether.vault.sealed_box import SealedBox
from tether.web.inflight_requests import InflightRequests

__all__ = ["BOOTSTRAP_TOKEN_NAME", "Runtime"]

log = logging.getLogger(__name__)

BOOTSTRAP_TOKEN_NAME = "bootstrap"


@dataclass
class Runtime:
    settings: Settings
    db: Database
    projects: ProjectStore
    agents: AgentStore
    admin_tokens: AdminTokenStore
    credentials: CredentialStore
    session_store: SessionStore
    audit_store: AuditStore
    directory: Directory
    key_use: KeyUse
    sessions: SessionRegistry
    controls: FleetControls
    inflight: InflightStreams
    upstream_keys: UpstreamKeys
    anthropic: AnthropicUpstream
    audit: AuditLog
    feed: ChangeFeed
    spend: SpendStore
    budget_store: BudgetStore
    ledger: BudgetLedger
    budget_book: BudgetBook
    webhooks: WebhookStore
    alert_store: AlertStore
    outbox: OutboxDispatcher
    policy_store: PolicyStore
    policy_shadows: PolicyShadowStore
    policies: PolicyBook
    approvals: ApprovalStore
    approval_waiter: ApprovalWaiter
    approval_reaper: ApprovalReaper
    pipeline: Pipeline
    guards: EnforceGuards
    metrics: TetherMetrics
    aws_keys: AwsKeyStore
    aws: AwsUpstream
    vertex_tokens: VertexTokens
    tasks: TaskStore
    task_marks: SessionMarks
    task_desk: TaskDesk
    fleet_gauges: FleetGauges
    mcp_servers: McpServerStore
    mcp_registry: McpRegistry
    message_batches: MessageBatchStore
    batch_canceller: BatchCanceller
    approval_decider: ApprovalDecider
    slack: SlackStore
    """Slack interactivity: signing secret, user mappings, seen requests."""
    slack_replies: SlackReplies
    sqlite_writer: SqliteWriter | None = None
    """The hot-path writer on SQLite (None on PostgreSQL)."""
    otlp: OtlpExport | None = None
    """Span export, when ``TETHER_OTLP_ENDPOINT`` is set."""
    audit_keys: AuditSigningKeys | None = None
    anchors: AnchorKeeper | None = None
    """Signed anchors kept every ``TETHER_AUDIT_ANCHOR_EVERY``, when set."""
    requests: InflightRequests = field(default_factory=InflightRequests)
    """Requests being handled, for an ordered stop (``tether.shutdown``)."""
    pauses: PauseWatch | None = None
    """GC pauses and event-loop lag, as metrics (started with the runtime)."""

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        """Migrate, load caches, start background work; the result serves requests."""
        private_directory(settings.data_dir)
        master_key = load_master_key(settings.master_key, settings.data_dir / "master.key")
        prices = load_price_overrides(settings.prices_file)
        db = Database(settings.resolved_database_url, settings.sqlite_synchronous)
        url = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
        try:
            behind = None if settings.migrate else await pending_revision(db)
            if settings.migrate:
                await upgrade(db, SealedBox(master_key))
        except Exception as exc:
            await db.dispose()
            raise ConfigError(f"cannot open the database at {url}: {exc}") from exc
        if behind is not None:
            await db.dispose()
            raise ConfigError(
                f"the database at {url} is not at this version's schema (it is at {behind}): "
                "run `tether migrate` first, or start without --no-migrate"
            )
        writer = (
            None
            if db.is_postgres
            else SqliteWriter(make_url(db.url).database or ":memory:", settings.sqlite_synchronous)
        )
        projects, agents, tokens = (
            ProjectStore(db, writer),
            AgentStore(db, writer),
            AdminTokenStore(db),
        )
        audit_store = AuditStore(db)
        credentials = CredentialStore(db, SealedBox(master_key))
        aws_keys = AwsKeyStore(db, SealedBox(master_key))
        key_use = KeyUse(agents, KeyAddressStore(db, writer))
        directory = Directory(projects, agents, tokens, aws_keys, key_use)
        spend = SpendStore(db, writer)
        session_store = SessionStore(db, writer)
        conversations = (
            _redis_conversations(settings.redis_url, settings.redis_prefix)
            if settings.redis_url
            else None
        )
        sessions = SessionRegistry(
            session_store, spend, conversations, cache_size=settings.sessions_in_memory
        )
        controls = FleetControls(ControlStore(db, writer))
        switch = KillSwitch(directory, sessions, controls)
        metrics = TetherMetrics(lambda pid: p.name if (p := directory.project(pid)) else None)
        fleet_gauges = FleetGauges(FleetState(db))
        metrics.registry.register(fleet_gauges)
        watcher: AuditWatcher = metrics
        otlp = None
        if settings.otlp is not None:
            otlp = open_otlp_export(settings.otlp, metrics.spans_dropped, metrics.spans_exported)
            watcher = AuditWatchers(metrics, otlp)
        audit = AuditLog(open_appender(db.url, writer), watcher=watcher)
        budget_store = BudgetStore(db)
        unsettled = RecordUnsettled(audit)
        hold_ms = int((settings.budget_hold_seconds or settings.upstream_read_timeout + 60) * 1000)
        budget_book = unsettled.book = BudgetBook(
            budget_store, on_unsettled=unsettled, reap_seconds=min(30.0, hold_ms / 2000)
        )
        alert_store = AlertStore(db)
        webhooks = WebhookStore(db, SealedBox(master_key))
        alerts = BudgetAlerts(alert_store, session_store, spend, directory, sessions)
        database_ledger = open_ledger(db, writer)
        ledger: BudgetLedger = database_ledger
        leases: LeasedLedger | None = None
        if settings.budget_lease_percent > 0:
            leases = LeasedLedger(database_ledger, settings.budget_lease_percent, hold_ms)
            leases.start()
            ledger = leases
        reserve = ReserveBudget(
            budget_book, budget_store, ledger, prices, sessions, alerts, hold_ms=hold_ms
        )
        memory: GuardMemory = (
            _redis_guard_memory(settings.redis_url, settings.redis_prefix)
            if settings.redis_url
            else LocalGuardMemory(max(1, settings.sessions_in_memory // 2))
        )
        guards = EnforceGuards(TripResponder(sessions, alert_store, audit), memory=memory)
        metrics.gauge(
            "tether_circuit_breakers_open",
            "Projects whose model calls fail fast now (upstream kept answering 429/5xx)",
            lambda: guards.memory.open_breakers(now_ms()),
        )
        policy_store = PolicyStore(db)
        policy_shadows = PolicyShadowStore(db)
        policies = PolicyBook(policy_store, policy_shadows)
        upstream_keys = UpstreamKeys(credentials)
        approvals = ApprovalStore(db, writer)
        tasks, task_marks = TaskStore(db), SessionMarks()
        mcp_servers = McpServerStore(db, SealedBox(master_key))
        mcp_registry = McpRegistry(mcp_servers, alert_store)
        pipeline = Pipeline(
            default_stages(
                directory,
                sessions,
                switch,
                prices,
                reserve,
                policies,
                approvals,
                guards,
                KeepTaskInView(tasks, task_marks, DriftWatch(audit, alert_store)),
                EnforceToolPins(mcp_registry),
            ),
            audit,
            on_decided=metrics.decided,
        )
        runtime = cls(
            settings=settings,
            db=db,
            projects=projects,
            agents=agents,
            admin_tokens=tokens,
            credentials=credentials,
            session_store=session_store,
            audit_store=audit_store,
            directory=directory,
            key_use=key_use,
            sessions=sessions,
            controls=controls,
            inflight=InflightStreams(switch),
            upstream_keys=upstream_keys,
            anthropic=AnthropicUpstream(
                settings.upstream_connect_timeout, settings.upstream_read_timeout
            ),
            audit=audit,
            feed=ChangeFeed(db, settings.change_poll_seconds),
            spend=spend,
            budget_store=budget_store,
            ledger=ledger,
            budget_book=budget_book,
            webhooks=webhooks,
            alert_store=alert_store,
            outbox=OutboxDispatcher(
                alert_store,
                webhooks,
                alerts,
                retry_base_ms=int(settings.alert_retry_base_seconds * 1000),
                public_url=settings.public_url,
            ),
            policy_store=policy_store,
            policy_shadows=policy_shadows,
            policies=policies,
            approvals=approvals,
            approval_waiter=ApprovalWaiter(approvals),
            approval_reaper=ApprovalReaper(
                approvals, audit, directory, settings.approval_reap_seconds
            ),
            pipeline=pipeline,
            guards=guards,
            metrics=metrics,
            aws_keys=aws_keys,
            aws=AwsUpstream(
                upstream_keys, settings.upstream_connect_timeout, settings.upstream_read_timeout
            ),
            vertex_tokens=VertexTokens(upstream_keys),
            tasks=tasks,
            task_marks=task_marks,
            task_desk=TaskDesk(tasks, directory, pipeline, audit, alert_store, task_marks),
            sqlite_writer=writer,
            fleet_gauges=fleet_gauges,
            mcp_servers=mcp_servers,
            mcp_registry=mcp_registry,
            message_batches=MessageBatchStore(db),
            batch_canceller=BatchCanceller(switch, MessageBatchStore(db), directory),
            approval_decider=ApprovalDecider(approvals, directory, audit),
            slack=SlackStore(db, SealedBox(master_key)),
            slack_replies=SlackReplies(),
            otlp=otlp,
            audit_keys=AuditSigningKeys(db, SealedBox(master_key)),
        )
        if settings.audit_anchor_every is not None and settings.audit_anchor_dest is not None:
            assert runtime.audit_keys is not None
            runtime.anchors = AnchorKeeper(
                audit_store,
                runtime.audit_keys,
                open_destination(settings.audit_anchor_dest),
                settings.audit_anchor_every,
                metrics.anchor_written,
                metrics.anchor_failed,
            )
        metrics.gauge(
            "tether_streams_in_flight", "Streams being relayed now", lambda: len(runtime.inflight)
        )
        waiter = runtime.approval_waiter
        metrics.registry.register(
            MemoryGauges(
                lambda: {
                    **sessions.sizes(),
                    **(leases.sizes() if leases is not None else {}),
                    "guard_sessions": guards.memory.remembered(),
                    "alert_crossings": alerts.remembered(),
                    "approval_waiters": waiter.waiting(),
                    "requests_in_flight": len(runtime.requests),
                    **policies.remembered(),
                    **normalise.remembered(),
                    **redaction_text.remembered(),
                }
            )
        )
        if writer is not None:
            SqliteWriterCounters(writer, metrics.registry)
            metrics.registry.register(SqliteMemoryGauge())
            if settings.sqlite_commit_on_loop:
                await writer.commit_on_loop()
        await runtime._adopt_env_admin_token()
        await runtime.feed.mark()
        await directory.load()
        await controls.load()
        await budget_book.load()
        await policies.load()
        for handler in (
            budget_book.apply,
            policies.apply,
            runtime.approval_waiter.apply,
            directory.apply,
            sessions.apply,
            controls.apply,
            runtime.upstream_keys.apply,
            runtime.aws.apply,
            runtime.vertex_tokens.apply,
            runtime.inflight.apply,
            runtime.batch_canceller.apply,
            mcp_registry.apply,
        ):
            runtime.feed.subscribe(handler)
        await runtime.feed.start()
        await runtime.anthropic.start()
        await runtime.aws.start()
        if otlp is not None:
            otlp.start()
        audit.start()
        await sessions.warm_up()
        sessions.start()
        key_use.start()
        budget_book.start()
        runtime.outbox.start()
        runtime.slack_replies.start()
        runtime.approval_reaper.start()
        if runtime.anchors is not None:
            runtime.anchors.start()
        runtime.pauses = PauseWatch(metrics.registry)
        runtime.pauses.start()
        return runtime

    async def stop(self) -> None:
        await self.pipeline.drain()
        if self.pauses is not None:
            await self.pauses.stop()
        await self.budget_book.stop()
        await self.outbox.stop()
        await self.slack_replies.stop()
        await self.approval_reaper.stop()
        await self.feed.stop()
        await self.anthropic.stop()
        await self.aws.stop()
        await self.sessions.stop()
        await self.key_use.stop()
        await self.ledger.close()
        await self.audit.stop()
        if self.otlp is not None:
            await asyncio.to_thread(self.otlp.stop)
        if self.anchors is not None:
            await self.anchors.stop()
        if self.sqlite_writer is not None:
            await self.sqlite_writer.close()
        await self.guards.memory.close()
        await self.db.dispose()

    async def _adopt_env_admin_token(self) -> None:
        """Make ``TETHER_ADMIN_TOKEN`` an admin token (deployments bring their own).

        Idempotent across replicas started together: when another process created a token
        under the same name meanwhile, the same secret is adopted as it is; a different
        secret under that name is a configuration error that says so."""
        wanted = self.settings.bootstrap_admin_token
        if not wanted:
            return
        wanted_hash = hash_secret(wanted)
        existing = await self.admin_tokens.all()
        if any(t.token_hash == wanted_hash for t in existing):
            return
        name = BOOTSTRAP_TOKEN_NAME if not existing else f"env-{len(existing)}"
        try:
            await self.admin_tokens.create(name, Role.ADMIN, secret=wanted)
        except Conflict:
            now = await self.admin_tokens.all()
            if any(t.token_hash == wanted_hash for t in now):
                return  # another replica created this very token first
            raise ConfigError(
                f"TETHER_ADMIN_TOKEN differs from the admin token named {name!r} that "
                "another tether process created at the same time; give every replica the "
                "same TETHER_ADMIN_TOKEN"
            ) from None

    async def create_bootstrap_token(self) -> str | None:
        """The first admin token's secret, when there is no admin token yet; call it only
        once the server listens, so a start that fails cannot create a token nobody saw.
        None when another replica created the first token meanwhile (it printed it)."""
        if self.settings.bootstrap_admin_token or await self.admin_tokens.all():
            return None
        try:
            _, secret = await self.admin_tokens.create(BOOTSTRAP_TOKEN_NAME, Role.ADMIN)
        except Conflict:
            return None
        return secret


def _redis_conversations(url: str, prefix: str) -> Conversations:
    """Imported here, only for a fleet that has Redis: its client library costs a single
    process 7 MiB it would never use."""
    from tether.sessions.redis_conversations import RedisConversations

    return RedisConversations(url, prefix)


def _redis_guard_memory(url: str, prefix: str) -> GuardMemory:
    """Imported only with Redis configured (``_redis_conversations``)."""
    from tether.guards.redis_memory import RedisGuardMemory

    return RedisGuardMemory(url, prefix)
