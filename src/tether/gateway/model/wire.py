"""The seam between the shared model call and one protocol's wire format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from tether.gateway.anthropic.request import MessagesRequest
from tether.gateway.anthropic.stream_tap import Segment, StreamTap
from tether.gateway.model.dialect import MESSAGES_DIALECT, Dialect
from tether.gateway.model.keepalive import SSE_PING
from tether.identity.directory import AgentIdentity

__all__ = [
    "ModelCall",
    "ModelWire",
    "PassThrough",
    "SseWire",
    "StreamCodec",
    "UpstreamTarget",
    "no_retry_headers",
]


class StreamCodec(Protocol):
    """Reads a protocol's stream into the one tap as Messages events, so one tap reads all.

    ``read`` feeds the tap a chunk of upstream's stream (cut anywhere: it buffers partial
    frames) and returns what the tap lets pass, in the protocol's own framing, to be
    written as it is (the upstream bytes untouched where nothing in them changes).
    ``encode`` is given tether's own SSE events (an error ending the stream) and returns
    the protocol's framing of them."""

    keepalive: bytes
    """What tether writes on a quiet stream (a ping in the protocol's framing), and whether
    upstream's pings may pass ahead of a held tool call; empty: neither."""

    broken: str | None
    """Why upstream's stream cannot be read on (Bedrock's: a corrupt frame), once it
    cannot; None while it reads. The relay then reads no more, closes upstream at once
    (it stops generating what tether could not count) and ends the agent's stream with an
    error, the call charged as a cut answer."""

    def read(self, tap: StreamTap, chunk: bytes) -> list[Segment]: ...

    def encode(self, events: bytes) -> bytes: ...


class PassThrough:
    """The Messages API's own SSE (and Vertex's): nothing to translate. SSE has no frame
    to break: an unreadable event is skipped by the tap, which scans each byte once."""

    keepalive = SSE_PING
    broken: str | None = None

    def read(self, tap: StreamTap, chunk: bytes) -> list[Segment]:
        return tap.feed(chunk)

    def encode(self, events: bytes) -> bytes:
        return events


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """Where an allowed call goes, with tether's credential on it."""

    url: str | URL
    """A ``URL(…, encoded=True)`` when the path was signed as it is (SigV4)."""
    headers: CIMultiDict[str]
    body: bytes


@dataclass(frozen=True, slots=True)
class ModelCall:
    """A model call as its front door understood it, ready for the pipeline."""

    source: str
    operation: str
    """``messages`` (generates, priced) or ``count_tokens`` (free)."""
    parsed: MessagesRequest
    """Its ``model`` as the protocol names it (a Bedrock inference profile, a Vertex
    ``name@date``): prices and the policy resource use its canonical form."""
    body: bytes
    tags: dict[str, str] = field(default_factory=dict)
    """Where the call runs (``cloud``, ``region``): policies scope by them."""
    credential: str | None = None
    """The agent's key when the door read it itself (the AWS broker: the access key id
    whose signature it verified); else the key in the request's headers."""
    join_latest_session: bool = False
    """For callers that name no session and send no conversation to know them by."""
    dialect: Dialect = MESSAGES_DIALECT
    """The body's format (Bedrock's Converse has its own): how to edit it, read its answer."""


class ModelWire(Protocol):
    """What differs between model front doors."""

    upstream_name: str
    """How refusals name the upstream: "the Anthropic API", "Amazon Bedrock"."""

    def refusal(self, code: str, message: str, headers: dict[str, str]) -> web.Response: ...

    def codec(self) -> StreamCodec: ...

    def is_stream(self, upstream: aiohttp.ClientResponse) -> bool: ...

    async def target(
        self, request: web.Request, identity: AgentIdentity, call: ModelCall, body: bytes
    ) -> UpstreamTarget:
        """Raises a ``TetherError`` (``no_upstream_credential``) when tether holds no
        credential for the project."""
        ...


_PASS_THROUGH = PassThrough()


class SseWire:
    """For wires whose stream is the Messages API's own SSE (Anthropic, Vertex)."""

    def codec(self) -> StreamCodec:
        return _PASS_THROUGH

    def is_stream(self, upstream: aiohttp.ClientResponse) -> bool:
        return upstream.content_type == "text/event-stream"


def no_retry_headers(status: int, headers: dict[str, str] | None) -> dict[str, str]:
    """``headers`` plus ``x-should-retry: false`` on a 4xx refusal other than 429: the SDKs
    and Claude Code honour it, and retrying a killed session or a denied call cannot succeed."""
    all_headers = dict(headers or {})
    if 400 <= status < 500 and status != 429:
        all_headers["x-should-retry"] = "false"
    return all_headers
