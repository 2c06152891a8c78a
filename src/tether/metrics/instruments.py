"""The instruments, on one registry per runtime (so several runtimes in one process, as in
tests, do not share counts).

Counting happens where every event already passes once — the audit log, after a batch is
durable — so a metric can never count something the trail does not hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
)

from tether.audit.event import AuditEvent
from tether.metrics.tallies import CounterTally, HistogramTally

__all__ = ["TetherMetrics"]

disable_created_metrics()  # type: ignore[no-untyped-call]
"""The ``_created`` series only double every counter's series count; nothing reads them."""

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
DECISIONS = frozenset({"allow", "deny", "pending"})
TOKEN_FIELDS = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_creation_input_tokens": "cache_creation",
    "cache_read_input_tokens": "cache_read",
}


def _phase(event: AuditEvent) -> str:
    if event.action.endswith(":completed"):
        return "completion"
    return "decision" if event.result in DECISIONS else "record"


class TetherMetrics:
    def __init__(self, project_name: Callable[[str], str | None] | None = None) -> None:
        """``project_name(id)`` names projects in labels (the id when it has no name)."""
        self._project_name = project_name or (lambda _id: None)
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        self.events = CounterTally(
            "tether_events",
            "Audit events recorded, by front door, service, phase and result",
            ["source", "service", "phase", "result", "code"],
            self.registry,
        )
        self.decision_seconds = HistogramTally(
            "tether_decision_seconds",
            "Time to decide an action, its audit event durable included",
            ["source"],
            LATENCY_BUCKETS,
            self.registry,
        )
        self.audit_commit_seconds = HistogramTally(
            "tether_audit_commit_seconds",
            "Time to make one batch of audit events durable",
            [],
            LATENCY_BUCKETS,
            self.registry,
        )
        self.audit_failures = Counter(
            "tether_audit_write_failures",
            "Audit batches that could not be written (their actions were refused)",
            registry=self.registry,
        )
        self.upstream_seconds = HistogramTally(
            "tether_upstream_call_seconds",
            "Duration of forwarded calls as the agent saw them, by front door and status",
            ["source", "status"],
            UPSTREAM_BUCKETS,
            self.registry,
        )
        self.tokens = CounterTally(
            "tether_model_tokens",
            "Tokens the model API reported, by type, project and model",
            ["type", "project", "model"],
            self.registry,
        )
        self.cost = CounterTally(
            "tether_model_cost_usd",
            "Cost of model calls in US dollars, by project and model",
            ["project", "model"],
            self.registry,
        )
        self.guard_trips = Counter(
            "tether_guard_trips",
            "Runaway-loop guards tripped, by guard and project",
            ["guard", "project"],
            registry=self.registry,
        )
        self.shadow_differences = Counter(
            "tether_policy_shadow_differences",
            "Decisions where a project's shadow policy would have decided otherwise, by "
            "project and direction (would_deny, would_allow, would_ask)",
            ["project", "direction"],
            registry=self.registry,
        )
        self.otlp_exported = Counter(
            "tether_otlp_spans_exported",
            "Spans the OTLP collector accepted",
            registry=self.registry,
        )
        self.otlp_dropped = Counter(
            "tether_otlp_spans_dropped",
            "Spans not exported: the collector refused them, or their audit events found "
            "the export queue full (counted as events)",
            registry=self.registry,
        )

        self.anchors_written = Counter(
            "tether_audit_anchors_written",
            "Signed anchors of the audit chain head written to the anchor destination",
            registry=self.registry,
        )
        self.anchor_failures = Counter(
            "tether_audit_anchor_failures",
            "Attempts to write a signed anchor that failed (the destination is unreachable)",
            registry=self.registry,
        )
        self.anchor_seq = Gauge(
            "tether_audit_anchor_seq",
            "The event number of the last signed anchor this process wrote",
            registry=self.registry,
        )

        self.unauthenticated = Counter(
            "tether_unauthenticated_refusals",
            "Requests refused at a front door for a missing or invalid agent key, by door and code",
            ["door", "code"],
            registry=self.registry,
        )

        self.readiness = Gauge(
            "tether_readiness",
            "The last readiness check of a project: 1 pass, 0.5 warn, 0 fail, by project and check",
            ["project", "check"],
            registry=self.registry,
        )
        self.drill_seconds = Gauge(
            "tether_drill_seconds",
            "How long the last drill of a project took to take effect, by project and drill",
            ["project", "drill"],
            registry=self.registry,
        )

        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        """Labelled children, looked up once: ``labels()`` costs microseconds per call."""

    def _child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        """A value read at scrape time (streams in flight, sessions cached)."""
        Gauge(name, help_text, registry=self.registry).set_function(read)

    def readiness_checked(self, project: str, check: str, score: float) -> None:
        self._child(self.readiness, project, check).set(score)

    def drilled(self, project: str, drill: str, seconds: float) -> None:
        self._child(self.drill_seconds, project, drill).set(seconds)

    def decided(self, source: str, seconds: float) -> None:
        self.decision_seconds.observe((source,), seconds)

    def audit_written(self, events: Sequence[AuditEvent], seconds: float) -> None:
        self.audit_commit_seconds.observe((), seconds)
        for event in events:
            service = event.action.split(":", 1)[0]
            self.events.add((event.source, service, _phase(event), event.result, event.code or ""))
            if event.action.endswith(":completed"):
                self._completion(event)
            elif event.source == "guards" and event.code:
                self._child(self.guard_trips, event.code, self._project(event)).inc()
            elif "shadow" in event.attributes:
                self._shadow_difference(event)

    def refused(self, door: str, code: str) -> None:
        self._child(self.unauthenticated, door, code).inc()

    def audit_failed(self) -> None:
        self.audit_failures.inc()

    def anchor_written(self, anchor: Any) -> None:
        self.anchors_written.inc()
        self.anchor_seq.set(anchor.seq)

    def anchor_failed(self) -> None:
        self.anchor_failures.inc()

    def spans_exported(self, count: int) -> None:
        self.otlp_exported.inc(count)

    def spans_dropped(self, count: int) -> None:
        self.otlp_dropped.inc(count)

    def _project(self, event: AuditEvent) -> str:
        if not event.project_id:
            return ""
        return self._project_name(event.project_id) or event.project_id

    def _shadow_difference(self, event: AuditEvent) -> None:
        shadow = event.attributes["shadow"]
        if isinstance(shadow, dict):
            direction = f"would_{shadow.get('decision', '')}"
            self._child(self.shadow_differences, self._project(event), direction).inc()

    def _completion(self, event: AuditEvent) -> None:
        attributes = event.attributes
        latency = attributes.get("latency_ms")
        if isinstance(latency, int | float):
            status = str(attributes.get("status", ""))
            self.upstream_seconds.observe((event.source, status), latency / 1000)
        model = attributes.get("model")
        model = model if isinstance(model, str) else ""
        project = self._project(event)
        usage = attributes.get("usage")
        if isinstance(usage, dict):
            for field, kind in TOKEN_FIELDS.items():
                count = usage.get(field)
                if isinstance(count, int) and count > 0:
                    self.tokens.add((kind, project, model), count)
        cost = attributes.get("cost_usd")
        if isinstance(cost, int | float) and cost > 0 and event.project_id:
            self.cost.add((project, model), cost)
