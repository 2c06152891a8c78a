"""Spans over OTLP, received by a real collector endpoint in the test (HTTP/protobuf and
gRPC) and decoded with opentelemetry-proto: the GenAI attributes of a streamed model call,
a refused call and a hook decision, one trace per session, and export that drops rather
than holds up a request."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import anthropic
import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.support.clouds import BEDROCK_REGION, VERTEX_REGION, give_clouds
from tests.support.databases import sqlite_url
from tests.support.fake_upstream import RunningFake
from tests.support.receiver import Receiver
from tests.support.server import RunningTether, start_tether
from tether.fakes.anthropic import FakeReply
from tether.telemetry.otlp import OtlpSettings

SESSION = "5b1c0c7e-0f3a-4d5e-9a61-2f7d3c9e8b10"
Span = dict[str, Any]


def _value(value: AnyValue) -> Any:
    return getattr(value, value.WhichOneof("value") or "string_value")


def decoded(requests: list[trace_service_pb2.ExportTraceServiceRequest]) -> list[Span]:
    spans = []
    for request in requests:
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        {
                            "name": span.name,
                            "trace": span.trace_id.hex(),
                            "id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(),
                            "status": span.status.code,
                            "attributes": {a.key: _value(a.value) for a in span.attributes},
                            "events": [
                                {a.key: _value(a.value) for a in e.attributes} for e in span.events
                            ],
                            "resource": resource,
                        }
                    )
    return spans


def http_requests(receiver: Receiver) -> list[trace_service_pb2.ExportTraceServiceRequest]:
    assert all(d.path == "/v1/traces" for d in receiver.deliveries)
    assert all(d.headers["Content-Type"] == "application/x-protobuf" for d in receiver.deliveries)
    return [
        trace_service_pb2.ExportTraceServiceRequest.FromString(d.body) for d in receiver.deliveries
    ]


class GrpcCollector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def traced_tether(tmp_path: Path, upstream: RunningFake, otlp: OtlpSettings) -> RunningTether:
    server = start_tether(
        tmp_path / "data",
        sqlite_url(str(tmp_path)),
        anthropic_base_url=upstream.url,
        otlp=otlp,
    )
    server.create_project("p", upstream.fake.api_key)
    server.create_project(
        "closed", upstream.fake.api_key, policy="forbid(principal, action, resource);"
    )
    return server


def wait_for(spans: Callable[[], list[Span]], names: set[str]) -> list[Span]:
    deadline = time.monotonic() + 10
    while True:
        found = spans()
        if names <= {s["name"] for s in found} or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def exercise(
    server: RunningTether, upstream: RunningFake, sdk: Callable[..., anthropic.Anthropic]
) -> str:
    """A streamed call asking for a tool, the tool's hook decision, a refused call; returns
    the tool_use id the model asked for."""
    key = server.create_agent("worker", "p")
    upstream.fake.default = FakeReply(
        kind="tool_use",
        input_tokens=100,
        output_tokens=20,
        cache_read_input_tokens=300,
        cache_creation_input_tokens=40,
    )
    agent = sdk(server, key, session=SESSION)
    with agent.messages.stream(
        model="claude-sonnet-5",
        max_tokens=64,
        messages=[{"role": "user", "content": "list files"}],
    ) as stream:
        answer = stream.get_final_message()
    tool_use_id = next(b.id for b in answer.content if b.type == "tool_use")
    hook = httpx.post(
        f"{server.url}/hooks/claude-code",
        json={
            "session_id": SESSION,
            "cwd": "/home/dev/app",
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": "ls"},
            "tool_use_id": tool_use_id,
        },
        headers={"Authorization": f"Bearer {key}"},
    )
    assert hook.status_code == 200, hook.text
    closed = sdk(server, server.create_agent("outsider", "closed"))
    with pytest.raises(anthropic.PermissionDeniedError):
        closed.messages.create(
            model="claude-haiku-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    return tool_use_id


def check_spans(spans: list[Span], tool_use_id: str, server: RunningTether) -> None:
    by_name = {s["name"]: s for s in spans}
    call = by_name["chat claude-sonnet-5"]
    attributes = call["attributes"]
    worker = server.call("GET", "/agents/worker").json()
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert attributes["gen_ai.request.model"] == "claude-sonnet-5"
    assert attributes["gen_ai.response.model"] == "claude-sonnet-5"
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["gen_ai.usage.input_tokens"] == 100 + 300 + 40
    assert attributes["gen_ai.usage.output_tokens"] == 20
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 300
    assert attributes["gen_ai.usage.cache_creation.input_tokens"] == 40
    assert attributes["gen_ai.agent.name"] == "worker"
    assert attributes["gen_ai.agent.id"] == worker["id"]
    assert attributes["gen_ai.conversation.id"] == SESSION
    assert attributes["tether.decision"] == "allow"
    assert attributes["tether.code"] == ""
    assert attributes["tether.cost_usd"] > 0
    assert call["events"] == [{"gen_ai.tool.name": "Bash", "gen_ai.tool.call.id": tool_use_id}]
    assert call["resource"]["service.name"] == "tether"

    tool = by_name["execute_tool Bash"]["attributes"]
    assert tool["gen_ai.operation.name"] == "execute_tool"
    assert tool["gen_ai.tool.name"] == "Bash"
    assert tool["gen_ai.tool.call.id"] == tool_use_id
    assert tool["gen_ai.conversation.id"] == SESSION
    assert tool["gen_ai.agent.name"] == "worker"
    assert tool["tether.decision"] == "allow"

    root = by_name["invoke_agent worker"]
    assert root["parent"] == ""
    session_spans = [root, call, by_name["execute_tool Bash"]]
    assert {s["trace"] for s in session_spans} == {root["trace"]}, "one trace per session"
    assert call["parent"] == root["id"]
    assert by_name["execute_tool Bash"]["parent"] == call["id"], "the tool under its call"

    refused = by_name["chat claude-haiku-5"]
    assert refused["attributes"]["tether.decision"] == "deny"
    assert refused["attributes"]["tether.code"] == "policy_denied"
    assert refused["attributes"]["gen_ai.agent.name"] == "outsider"
    assert refused["status"] == 2  # STATUS_CODE_ERROR
    assert "gen_ai.usage.input_tokens" not in refused["attributes"]
    assert refused["trace"] != root["trace"]


def test_http_protobuf_export_carries_the_genai_conventions_one_trace_per_session(
    tmp_path: Path,
    upstream: RunningFake,
    receiver: Receiver,
    sdk: Callable[..., anthropic.Anthropic],
) -> None:
    server = traced_tether(tmp_path, upstream, OtlpSettings(receiver.url, delay_seconds=0.05))
    try:
        tool_use_id = exercise(server, upstream, sdk)
        wanted = {"chat claude-sonnet-5", "execute_tool Bash", "chat claude-haiku-5"}
        spans = wait_for(lambda: decoded(http_requests(receiver)), wanted)
        check_spans(spans, tool_use_id, server)
    finally:
        server.stop()


def test_grpc_export_carries_the_same_spans(
    tmp_path: Path, upstream: RunningFake, sdk: Callable[..., anthropic.Anthropic]
) -> None:
    collector = GrpcCollector()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    otlp = OtlpSettings(f"http://127.0.0.1:{port}", protocol="grpc", delay_seconds=0.05)
    server = traced_tether(tmp_path, upstream, otlp)
    try:
        tool_use_id = exercise(server, upstream, sdk)
        wanted = {"chat claude-sonnet-5", "execute_tool Bash", "chat claude-haiku-5"}
        check_spans(wait_for(lambda: decoded(collector.requests), wanted), tool_use_id, server)
    finally:
        server.stop()
        grpc_server.stop(None)


def test_a_stuck_collector_drops_spans_and_counts_them_without_slowing_calls(
    tmp_path: Path, upstream: RunningFake, sdk: Callable[..., anthropic.Anthropic]
) -> None:
    stuck = Receiver(hold_seconds=4).start()
    otlp = OtlpSettings(stuck.url, queue_batches=1, export_batch=1, delay_seconds=0.0)
    server = traced_tether(tmp_path, upstream, otlp)
    try:
        agent = sdk(server, server.create_agent("busy", "p"))
        started = time.monotonic()
        for n in range(8):
            agent.messages.create(
                model="claude-haiku-5", max_tokens=8, messages=[{"role": "user", "content": f"{n}"}]
            )
        # A call that waited would take the collector's 4 s; eight calls on a busy 2-core
        # machine took up to 2.2 s without waiting.
        assert time.monotonic() - started < 3.2, "calls waited for the collector"
        metrics = httpx.get(
            f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.admin_token}"}
        ).text
        dropped = next(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith("tether_otlp_spans_dropped_total ")
        )
        assert dropped > 0
    finally:
        server.stop()
        stuck.stop()


def test_model_calls_on_the_cloud_doors_are_spans_with_the_clouds_provider_names(
    tmp_path: Path, upstream: RunningFake, receiver: Receiver
) -> None:
    server = traced_tether(tmp_path, upstream, OtlpSettings(receiver.url, delay_seconds=0.05))
    try:
        give_clouds(server, "p", upstream)
        key = server.create_agent("cloud-worker", "p")
        with anthropic.AnthropicBedrock(
            api_key=key, base_url=f"{server.url}/bedrock", aws_region=BEDROCK_REGION
        ) as bedrock:
            bedrock.messages.create(
                model="us.anthropic.claude-opus-5-5",
                max_tokens=16,
                messages=[{"role": "user", "content": "hi"}],
            )
        with anthropic.AnthropicVertex(
            access_token=key,
            base_url=f"{server.url}/vertex/v1",
            region=VERTEX_REGION,
            project_id="any",
        ) as vertex:
            vertex.messages.create(
                model="claude-haiku-4-5@20251001",
                max_tokens=16,
                messages=[{"role": "user", "content": "hi"}],
            )
        wanted = {"chat us.anthropic.claude-opus-5-5", "chat claude-haiku-4-5@20251001"}
        spans = {s["name"]: s for s in wait_for(lambda: decoded(http_requests(receiver)), wanted)}
        bedrock_span = spans["chat us.anthropic.claude-opus-5-5"]["attributes"]
        assert bedrock_span["gen_ai.provider.name"] == "aws.bedrock"
        assert bedrock_span["gen_ai.usage.output_tokens"] > 0
        vertex_span = spans["chat claude-haiku-4-5@20251001"]["attributes"]
        assert vertex_span["gen_ai.provider.name"] == "gcp.vertex_ai"
        assert vertex_span["tether.cost_usd"] > 0
    finally:
        server.stop()
