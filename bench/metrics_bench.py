"""What counting a model call in the metrics costs the event loop (``TetherMetrics``: the
decision's latency, both audit events, the upstream latency, tokens and cost), beside the
same updates through ``prometheus_client``'s own labelled children in the same run.

    uv run python bench/metrics_bench.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from normalise_bench import call_events
from prometheus_client import CollectorRegistry, Counter, Histogram

from tether.audit.event import AuditEvent
from tether.clock import new_id
from tether.metrics.instruments import LATENCY_BUCKETS, UPSTREAM_BUCKETS, TetherMetrics

Calls = list[tuple[AuditEvent, AuditEvent]]


def prometheus_children() -> Callable[[AuditEvent, AuditEvent], None]:
    """The same series, counted through the library's children (looked up once)."""
    registry = CollectorRegistry()
    decided = Histogram("d", "d", ["s"], buckets=LATENCY_BUCKETS, registry=registry)
    commit = Histogram("c", "c", buckets=LATENCY_BUCKETS, registry=registry)
    events = Counter("e", "e", ["s", "v", "p", "r", "c"], registry=registry)
    upstream = Histogram("u", "u", ["s", "st"], buckets=UPSTREAM_BUCKETS, registry=registry)
    tokens = Counter("t", "t", ["k", "p", "m"], registry=registry)
    cost = Counter("m", "m", ["p", "m"], registry=registry)
    children = (
        decided.labels("anthropic"),
        events.labels("anthropic", "model", "decision", "allow", ""),
        events.labels("anthropic", "model", "completion", "ok", ""),
        upstream.labels("anthropic", "200"),
        tokens.labels("input", "p", "m"),
        tokens.labels("output", "p", "m"),
        cost.labels("p", "m"),
    )

    def count(_decision: AuditEvent, completion: AuditEvent) -> None:
        d, e_decision, e_completion, u, t_in, t_out, c = children
        d.observe(0.0012)
        commit.observe(0.004)
        e_decision.inc()
        commit.observe(0.004)
        e_completion.inc()
        u.observe(completion.attributes["latency_ms"] / 1000)
        usage = completion.attributes["usage"]
        t_in.inc(usage["input_tokens"])
        t_out.inc(usage["output_tokens"])
        c.inc(completion.attributes["cost_usd"])

    return count


def ours() -> Callable[[AuditEvent, AuditEvent], None]:
    metrics = TetherMetrics()

    def count(decision: AuditEvent, completion: AuditEvent) -> None:
        metrics.decided("anthropic", 0.0012)
        metrics.audit_written([decision], 0.004)
        metrics.audit_written([completion], 0.004)

    return count


def per_call_us(calls: Calls, count: Callable[[AuditEvent, AuditEvent], None]) -> float:
    started = time.perf_counter()
    for decision, completion in calls:
        count(decision, completion)
    return (time.perf_counter() - started) / len(calls) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    project, agent = new_id(), new_id()
    calls = [call_events("3f1c9a52-8d0e-4c4b-9b7e-2a6f1d0c5e91", project, agent)
             for _ in range(args.calls)]  # fmt: skip
    library = per_call_us(calls, prometheus_children())
    tether = per_call_us(calls, ours())
    print(f"TetherMetrics, one model call:                {tether:5.1f} µs")
    print(
        f"the same updates through prometheus_client:  {library:5.1f} µs (children looked up once)"
    )


if __name__ == "__main__":
    main()
