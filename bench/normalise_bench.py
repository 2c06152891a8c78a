"""What making a model call's two audit events storable costs (``normalised_row``: every
string checked for secrets, every column bounded), on the event loop of every call, beside
serialising the same attributes as they are (``orjson.dumps``, the floor) in the same run.

The events are shaped as the gateway writes them for a Messages call: the decision and its
completion, with the ids a real call makes fresh (the upstream's request id, the decision's
event id) so the redactor's cache of short texts does not hide their scan.

    uv run python bench/normalise_bench.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import time
import uuid

import orjson

from tether.audit.event import AuditEvent
from tether.audit.normalise import normalised_row
from tether.clock import new_id

MODEL = "claude-sonnet-5"
RESOURCE = f"anthropic:model/{MODEL}"


def call_events(session: str, project: str, agent: str) -> tuple[AuditEvent, AuditEvent]:
    common = {
        "actor": "agent:bench-agent",
        "source": "anthropic",
        "resource": RESOURCE,
        "project_id": project,
        "agent_id": agent,
        "agent_name": "bench-agent",
        "session_id": session,
    }
    decision = AuditEvent(
        action="model:messages",
        result="allow",
        reason=f"model:messages on {RESOURCE} is permitted by policy 'tether:model-access'",
        attributes={
            "model": MODEL,
            "stream": True,
            "max_tokens": 64,
            "policy_version": 1,
            "policy_rules": ["'tether:model-access'"],
        },
        **common,
    )
    completion = AuditEvent(
        action="model:messages:completed",
        result="ok",
        reason="upstream answered 200",
        attributes={
            "decision_event": decision.id,
            "model": MODEL,
            "status": 200,
            "latency_ms": 8.64,
            "usage": {
                "input_tokens": 21,
                "output_tokens": 7,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
            "cost_usd": 0.000112,
            "usage_final": True,
            "price_known": True,
            "upstream_request_id": f"req_011C{uuid.uuid4().hex[:20]}",
        },
        **common,
    )
    return decision, completion


def per_call_us(events: list[tuple[AuditEvent, AuditEvent]], work: object) -> float:
    started = time.perf_counter()
    for decision, completion in events:
        work(decision)  # type: ignore[operator]
        work(completion)  # type: ignore[operator]
    return (time.perf_counter() - started) / len(events) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    project, agent = new_id(), new_id()
    for name, session_of in (
        ("one Claude Code session", lambda: "3f1c9a52-8d0e-4c4b-9b7e-2a6f1d0c5e91"),
        ("a new session every call", lambda: str(uuid.uuid4())),
    ):
        events = [call_events(session_of(), project, agent) for _ in range(args.calls)]
        floor = per_call_us(events, lambda event: orjson.dumps(event.attributes))
        cost = per_call_us(events, normalised_row)
        print(
            f"{name:<26} normalised_row, both events: {cost:6.1f} µs a call   "
            f"(orjson.dumps of their attributes alone: {floor:4.1f} µs)"
        )


if __name__ == "__main__":
    main()
