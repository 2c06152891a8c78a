"""OTLP span export that never holds up a request.

The audit writer hands each durable batch to ``OtlpExport.audit_written``, which only
puts it on a bounded queue (a full queue drops the batch and counts it); one thread turns
events into spans (``tether.telemetry.spans``) and exports them in batches. The
OpenTelemetry packages are imported only when export is configured (``tether[otel]``).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tether import __version__
from tether.audit.event import AuditEvent
from tether.errors import ConfigError
from tether.telemetry.spans import SpanBuilder, SpanRecord

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["OtlpExport", "OtlpSettings", "open_otlp_export"]

log = logging.getLogger(__name__)

PROTOCOLS = ("http/protobuf", "grpc")
MISSING = (
    "TETHER_OTLP_ENDPOINT needs the OpenTelemetry packages, an optional extra: install "
    "tether[otel] (`uv sync --extra otel` in a checkout, or `pip install 'tether[otel]'`)"
)
_STOP = object()


@dataclass(frozen=True, slots=True)
class OtlpSettings:
    endpoint: str
    protocol: str = "http/protobuf"
    queue_batches: int = 2048
    """Audit batches waiting to become spans (``OTEL_BSP_MAX_QUEUE_SIZE``)."""
    export_batch: int = 512
    """Spans per export request (``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``)."""
    delay_seconds: float = 1.0
    """Longest a span waits for its batch to fill (``OTEL_BSP_SCHEDULE_DELAY``, in ms)."""

    @classmethod
    def from_env(cls, endpoint: str, env: dict[str, str]) -> OtlpSettings:
        protocol = (
            env.get("TETHER_OTLP_PROTOCOL")
            or env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        ).strip()
        if protocol not in PROTOCOLS:
            raise ConfigError(
                f"the OTLP protocol {protocol!r} must be one of {', '.join(PROTOCOLS)}"
            )
        if not endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"TETHER_OTLP_ENDPOINT={endpoint!r} must be an http(s):// URL")

        def number(name: str, default: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            if not raw.isdigit() or int(raw) < 1:
                raise ConfigError(f"{name}={raw!r} must be a whole number of at least 1")
            return int(raw)

        return cls(
            endpoint=endpoint,
            protocol=protocol,
            queue_batches=number("OTEL_BSP_MAX_QUEUE_SIZE", 2048),
            export_batch=number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512),
            delay_seconds=number("OTEL_BSP_SCHEDULE_DELAY", 1000) / 1000,
        )


def _resource() -> Resource:
    """``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` win over tether's defaults."""
    from opentelemetry.sdk.resources import Resource

    attributes: dict[str, str] = {"service.version": __version__}
    named = os.environ.get("OTEL_SERVICE_NAME") or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    if not named:
        attributes["service.name"] = "tether"
    return Resource.create(attributes)


def _exporter(settings: OtlpSettings) -> SpanExporter:
    """Headers, timeout, compression and certificates come from the ``OTEL_EXPORTER_OTLP_*``
    variables, which the exporters read themselves."""
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(
            endpoint=settings.endpoint, insecure=settings.endpoint.startswith("http://")
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    endpoint = settings.endpoint
    if urlsplit(endpoint).path in ("", "/"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(endpoint=endpoint)


class _Readable:
    """``SpanRecord`` → the SDK's ``ReadableSpan``, ids kept as tether derived them."""

    def __init__(self, resource: Resource) -> None:
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self._resource = resource
        self._scope = InstrumentationScope("tether", __version__)

    def __call__(self, record: SpanRecord) -> ReadableSpan:
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        flags = TraceFlags(TraceFlags.SAMPLED)
        parent = (
            None
            if record.parent_id is None
            else SpanContext(record.trace_id, record.parent_id, False, flags)
        )
        model_call = "gen_ai.provider.name" in record.attributes
        return ReadableSpan(
            record.name,
            context=SpanContext(record.trace_id, record.span_id, False, flags),
            parent=parent,
            resource=self._resource,
            attributes=record.attributes,
            events=[
                Event(name, attributes, timestamp=ts * 1_000_000)
                for name, ts, attributes in record.events
            ],
            kind=SpanKind.CLIENT if model_call else SpanKind.INTERNAL,
            status=Status(StatusCode.ERROR, record.error) if record.error else Status(),
            start_time=record.start_ms * 1_000_000,
            end_time=record.end_ms * 1_000_000,
            instrumentation_scope=self._scope,
        )


class OtlpExport:
    """An ``AuditWatcher``: ``audit_written`` costs one non-blocking queue put."""

    def __init__(
        self,
        exporter: SpanExporter,
        resource: Resource,
        settings: OtlpSettings,
        on_dropped: Callable[[int], None],
        on_exported: Callable[[int], None],
    ) -> None:
        self._exporter = exporter
        self._readable = _Readable(resource)
        self._settings = settings
        self._queue: queue.Queue[Any] = queue.Queue(settings.queue_batches)
        self._on_dropped = on_dropped
        self._on_exported = on_exported
        self._thread: threading.Thread | None = None

    def audit_written(self, events: Sequence[AuditEvent], seconds: float) -> None:
        try:
            self._queue.put_nowait(events)
        except queue.Full:
            self._on_dropped(len(events))

    def audit_failed(self) -> None:
        """Nothing was written, so there is nothing to trace."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="otlp-export", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Export what is queued (for at most ``timeout`` seconds), then shut down; blocks,
        so call it from a thread."""
        if self._thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            log.warning("OTLP export queue still full at shutdown; its spans are lost")
        self._thread.join(timeout)
        self._thread = None
        self._exporter.shutdown()

    def _run(self) -> None:
        builder = SpanBuilder()
        ready: list[ReadableSpan] = []
        deadline = time.monotonic() + self._settings.delay_seconds
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = None
            if item is not None and item is not _STOP:
                try:
                    ready += [self._readable(r) for r in builder.feed(item)]
                except Exception:
                    log.exception("audit events could not be turned into spans")
            due = time.monotonic() >= deadline or item is _STOP
            if ready and (due or len(ready) >= self._settings.export_batch):
                self._send(ready, len(ready) if item is _STOP else self._settings.export_batch)
                ready = []
            if due:
                deadline = time.monotonic() + self._settings.delay_seconds
            if item is _STOP:
                return

    def _send(self, spans: list[ReadableSpan], batch: int) -> None:
        """At shutdown ``batch`` is everything left: one request, not one wait per batch."""
        from opentelemetry.sdk.trace.export import SpanExportResult

        for start in range(0, len(spans), batch):
            chunk = spans[start : start + batch]
            try:
                result = self._exporter.export(chunk)
            except Exception:
                log.exception("OTLP export failed")
                result = SpanExportResult.FAILURE
            if result is SpanExportResult.SUCCESS:
                self._on_exported(len(chunk))
            else:
                self._on_dropped(len(chunk))


def open_otlp_export(
    settings: OtlpSettings,
    on_dropped: Callable[[int], None],
    on_exported: Callable[[int], None],
) -> OtlpExport:
    try:
        exporter = _exporter(settings)
        resource = _resource()
    except ImportError:
        raise ConfigError(MISSING) from None
    return OtlpExport(exporter, resource, settings, on_dropped, on_exported)
