"""Audit events → spans with the OpenTelemetry GenAI semantic conventions.

Built from the events the audit log has just made durable, the one place every decision
and completion passes, so a span can never show something the trail does not hold.
One trace per session (its id derived from the session id), under an ``invoke_agent``
root; a model call is one span from its decision to its completion; each tool call and
cloud call decision is one span, under the model call that asked for the tool when known.
Pure data: no OpenTelemetry import, so it costs nothing when export is off.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tether.audit.event import AuditEvent

__all__ = ["SpanBuilder", "SpanRecord", "span_id_of", "trace_id_of"]

DECISIONS = frozenset({"allow", "deny", "pending"})
MODEL_PROVIDER = "anthropic"
CLOUD_PROVIDERS = {"bedrock": "aws.bedrock", "aws": "aws.bedrock", "vertex": "gcp.vertex_ai"}
"""GenAI semantic conventions' provider names for Claude on the clouds, by front door."""
REMEMBERED = 10_000
"""Allowed model calls awaiting completion, tool calls awaiting their hook decision,
sessions whose root span was sent: each bounded, oldest forgotten first."""


def _digest(kind: str, value: str, size: int) -> int:
    raw = hashlib.sha256(f"tether:{kind}:{value}".encode()).digest()[:size]
    return int.from_bytes(raw, "big") or 1


def trace_id_of(session_or_event: str) -> int:
    """Every replica derives the same trace for a session, so the tree is whole."""
    return _digest("trace", session_or_event, 16)


def span_id_of(kind: str, value: str) -> int:
    return _digest(kind, value, 8)


@dataclass(slots=True)
class SpanRecord:
    """One finished span, in OpenTelemetry's terms but free of its types."""

    name: str
    trace_id: int
    span_id: int
    parent_id: int | None
    start_ms: int
    end_ms: int
    attributes: dict[str, str | int | float | bool]
    error: str | None = None
    events: list[tuple[str, int, dict[str, str | int | float | bool]]] = field(default_factory=list)


class _Bounded(OrderedDict[str, Any]):
    def remember(self, key: str, value: Any) -> None:
        self[key] = value
        if len(self) > REMEMBERED:
            self.popitem(last=False)


def _agent_attributes(event: AuditEvent) -> dict[str, str | int | float | bool]:
    attributes: dict[str, str | int | float | bool] = {}
    if event.agent_id:
        attributes["gen_ai.agent.id"] = event.agent_id
    if event.agent_name:
        attributes["gen_ai.agent.name"] = event.agent_name
    if event.session_id:
        attributes["gen_ai.conversation.id"] = event.session_id
    if event.project_id:
        attributes["tether.project.id"] = event.project_id
    return attributes


def _decision_attributes(event: AuditEvent) -> dict[str, str | int | float | bool]:
    attributes = _agent_attributes(event)
    attributes["tether.decision"] = event.result
    attributes["tether.code"] = event.code or ""
    attributes["tether.action"] = event.action
    attributes["tether.resource"] = event.resource
    attributes["tether.source"] = event.source
    attributes["tether.event.id"] = event.id
    return attributes


def _usage_attributes(completion: AuditEvent) -> dict[str, str | int | float | bool]:
    """Anthropic counts cache tokens apart from ``input_tokens``; the convention says
    ``gen_ai.usage.input_tokens`` includes them, so they are added in."""
    found = completion.attributes
    attributes: dict[str, str | int | float | bool] = {}
    model = found.get("model")
    if isinstance(model, str) and model:
        attributes["gen_ai.response.model"] = model
    usage = found.get("usage")
    if isinstance(usage, dict):
        counts = {
            name: value if isinstance(value := usage.get(name), int) else 0
            for name in (
                "input_tokens",
                "output_tokens",
                "cache_read_input_tokens",
                "cache_creation_input_tokens",
            )
        }
        attributes["gen_ai.usage.input_tokens"] = (
            counts["input_tokens"]
            + counts["cache_read_input_tokens"]
            + counts["cache_creation_input_tokens"]
        )
        attributes["gen_ai.usage.output_tokens"] = counts["output_tokens"]
        attributes["gen_ai.usage.cache_read.input_tokens"] = counts["cache_read_input_tokens"]
        attributes["gen_ai.usage.cache_creation.input_tokens"] = counts[
            "cache_creation_input_tokens"
        ]
    cost = found.get("cost_usd")
    if isinstance(cost, int | float):
        attributes["tether.cost_usd"] = float(cost)
    request_id = found.get("upstream_request_id")
    if isinstance(request_id, str) and request_id:
        attributes["gen_ai.response.id"] = request_id
    status = found.get("status")
    if isinstance(status, int):
        attributes["http.response.status_code"] = status
    attributes["tether.outcome"] = completion.result
    return attributes


class SpanBuilder:
    """Fed durable audit events in write order; returns the spans they finish."""

    def __init__(self) -> None:
        self._calls: _Bounded = _Bounded()
        """Allowed model-call decision id → (decision event, the model call's span id)."""
        self._tool_parents: _Bounded = _Bounded()
        """tool_use id → span id of the model call that asked for it."""
        self._roots: _Bounded = _Bounded()
        self._last_call: SpanRecord | None = None
        """The model call just completed: the tool_use events after it are its own."""

    def feed(self, events: Iterable[AuditEvent]) -> list[SpanRecord]:
        spans: list[SpanRecord] = []
        for event in events:
            if event.source == "admin":
                continue
            if event.action.startswith("model:") and event.result in DECISIONS:
                self._model_decision(event, spans)
            elif event.action.startswith("model:") and event.action.endswith(":completed"):
                self._model_completion(event, spans)
            elif event.action.startswith("tool_use:"):
                self._tool_use(event, spans)
            elif event.result in DECISIONS:
                self._tool_decision(event, spans)
        return spans

    def _trace(self, event: AuditEvent, spans: list[SpanRecord]) -> tuple[int, int]:
        """The session's trace and root span; the root is sent once per process."""
        key = event.session_id or f"event:{event.id}"
        trace, root = trace_id_of(key), span_id_of("session", key)
        if key not in self._roots:
            self._roots.remember(key, True)
            attributes = _agent_attributes(event)
            attributes["gen_ai.operation.name"] = "invoke_agent"
            spans.append(
                SpanRecord(
                    f"invoke_agent {event.agent_name or 'unidentified'}",
                    trace,
                    root,
                    None,
                    event.ts,
                    event.ts,
                    attributes,
                )
            )
        return trace, root

    def _model_span(
        self, decision: AuditEvent, completion: AuditEvent | None, spans: list[SpanRecord]
    ) -> SpanRecord:
        trace, root = self._trace(decision, spans)
        operation = decision.action.removeprefix("model:")
        model = decision.attributes.get("model")
        attributes = _decision_attributes(decision)
        attributes["gen_ai.operation.name"] = "chat" if operation == "messages" else operation
        attributes["gen_ai.provider.name"] = CLOUD_PROVIDERS.get(decision.source, MODEL_PROVIDER)
        if isinstance(model, str) and model:
            attributes["gen_ai.request.model"] = model
        stream = decision.attributes.get("stream")
        if isinstance(stream, bool):
            attributes["gen_ai.request.stream"] = stream
        max_tokens = decision.attributes.get("max_tokens")
        if isinstance(max_tokens, int):
            attributes["gen_ai.request.max_tokens"] = max_tokens
        error = None if decision.result == "allow" else (decision.code or decision.result)
        if completion is not None:
            attributes.update(_usage_attributes(completion))
            if completion.result != "ok":
                error = completion.code or completion.result
        return SpanRecord(
            f"{attributes['gen_ai.operation.name']} {model or ''}".strip(),
            trace,
            span_id_of("call", decision.id),
            root,
            decision.ts,
            completion.ts if completion is not None else decision.ts,
            attributes,
            error,
        )

    def _model_decision(self, event: AuditEvent, spans: list[SpanRecord]) -> None:
        if event.result == "allow":
            self._calls.remember(event.id, event)
            return
        spans.append(self._model_span(event, None, spans))

    def _model_completion(self, event: AuditEvent, spans: list[SpanRecord]) -> None:
        decision_id = event.attributes.get("decision_event")
        decision = self._calls.pop(decision_id, None) if isinstance(decision_id, str) else None
        if decision is None:
            return
        span = self._model_span(decision, event, spans)
        spans.append(span)
        self._last_call = span

    def _tool_use(self, event: AuditEvent, spans: list[SpanRecord]) -> None:
        """The model asked for a tool: an event on the call's span (the completion comes
        first in the same batch), and the parent of the tool's hook decision later."""
        call = self._last_call
        tool_use_id = event.attributes.get("tool_use_id")
        if call is None or call.trace_id != trace_id_of(event.session_id or ""):
            return
        if isinstance(tool_use_id, str) and tool_use_id:
            self._tool_parents.remember(tool_use_id, call.span_id)
            call.events.append(
                (
                    "gen_ai.tool.call",
                    event.ts,
                    {"gen_ai.tool.name": event.resource, "gen_ai.tool.call.id": tool_use_id},
                )
            )

    def _tool_decision(self, event: AuditEvent, spans: list[SpanRecord]) -> None:
        trace, root = self._trace(event, spans)
        attributes = _decision_attributes(event)
        attributes["gen_ai.operation.name"] = "execute_tool"
        tool = event.attributes.get("tool")
        attributes["gen_ai.tool.name"] = tool if isinstance(tool, str) and tool else event.action
        tool_use_id = event.attributes.get("tool_use_id")
        parent = root
        if isinstance(tool_use_id, str) and tool_use_id:
            attributes["gen_ai.tool.call.id"] = tool_use_id
            parent = self._tool_parents.get(tool_use_id, root)
        spans.append(
            SpanRecord(
                f"execute_tool {attributes['gen_ai.tool.name']}",
                trace,
                span_id_of("decision", event.id),
                parent,
                event.ts,
                event.ts,
                attributes,
                None if event.result == "allow" else (event.code or event.result),
            )
        )
