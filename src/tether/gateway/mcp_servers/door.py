"""``/mcp/servers/NAME``: MCP Streamable HTTP relayed to a project's registered server.

The door only translates. It authenticates the agent's tether key, forwards each message
with the server's own credential (never the agent's key), and turns three methods into
pipeline actions: ``tools/call`` (``mcp:TOOL`` on ``mcp://SERVER/TOOL``, arguments in
the policy's context), ``resources/read`` and ``prompts/get`` (reads). ``tools/list`` is
pinned and shows only the tools a look ahead through the pipeline would not refuse.
Everything else (``initialize``, notifications, the agent's answers to server requests,
the server-initiated GET stream, DELETE) is relayed undecided but not unseen: recorded as
``mcp:relay``, refused on a stopped session, and cut by a kill while it runs. Only
``Mcp-Session-Id`` and ``MCP-Protocol-Version`` are carried both ways, so the two sides
negotiate as they would directly; a stream is not resumed through tether
(``Last-Event-ID`` is not passed: a replayed answer would reach the agent uncounted).
Upstream answers are bounded (``MAX_ANSWER_BYTES``), redirects are not followed (a
credential header would go to another host) and no cookie is kept between calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from tether.clock import new_id
from tether.errors import TetherError, status_for
from tether.gateway.anthropic.proxy import session_id_from
from tether.gateway.credentials import admit_agent, presented_credential
from tether.gateway.mcp_servers import sse
from tether.gateway.mcp_servers.replies import INVALID_REQUEST, rpc_error, tool_refusal
from tether.guards.fingerprints import result_fingerprint, tool_use_fingerprint
from tether.identity.directory import Directory
from tether.kill.inflight import InflightStreams, StreamHandle
from tether.mcp_servers.oauth import TokenUnavailable
from tether.mcp_servers.registry import McpRegistry
from tether.pipeline import Action, Context, Decision, Deny, Pipeline
from tether.pipeline.outcome import Outcome, ToolResult, ToolUse
from tether.pipeline.stages.mcp_tools import SOURCE
from tether.records.mcp_servers import McpServer
from tether.redaction.text import redacted_summary
from tether.web.bodies import read_limited
from tether.web.lines import LineTooLong

__all__ = ["PATH", "McpServerDoor"]

log = logging.getLogger(__name__)

PATH = "/mcp/servers/{name}"
PASSED_HEADERS = ("Accept", "Content-Type", "Mcp-Session-Id", "MCP-Protocol-Version")
RETURNED_HEADERS = ("Mcp-Session-Id", "MCP-Protocol-Version")
INVALID_PARAMS = -32602
PARSE_ERROR = -32700
CANCEL_SECONDS = 5.0
DRAIN_SECONDS = 0.05
DRAIN_BYTES = 65_536
MAX_ANSWER_BYTES = 32 * 1024 * 1024
"""An upstream answer (a JSON body, one server-sent event) past this is cut: read whole,
it would hold the process's memory, and a gzip bomb decompresses to any size."""
STREAMS_PER_AGENT = 8
"""GET streams one agent may hold open at once: each holds a pooled upstream connection
for hours, and the pool (``POOL_CONNECTIONS``) serves every tenant's calls."""
POOL_CONNECTIONS = 1_000
DECIDED_METHODS = frozenset({"tools/call", "resources/read", "prompts/get"})
"""Methods the pipeline decides: one sent as a notification (no id) would be forwarded
undecided, and a lenient server may still run it."""


@dataclass(slots=True)
class _Caller:
    credential: str | None
    session_id: str | None
    agent_id: str
    project_id: str
    server: McpServer


@dataclass(slots=True)
class _Relay:
    """What a relay learned: the response it started (SSE) and the answer it saw."""

    out: web.StreamResponse | None = None
    answer: dict[str, Any] | None = None
    ended: bool = False
    """The agent's stream is complete (its answer relayed); nothing more may be written."""


def _string_arguments(arguments: dict[str, Any]) -> dict[str, str]:
    return {
        key: value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        for key, value in arguments.items()
    }


def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()


class AnswerTooLarge(Exception):
    """The server's answer passed ``MAX_ANSWER_BYTES``."""


def _same_id(theirs: Any, ours: Any) -> bool:
    """As MCP clients match an answer to its request: ``"1"`` answers ``1`` (the
    TypeScript SDK compares ``Number(id)``), so tether must read it as the answer too."""
    if theirs == ours:
        return True
    kinds = (int, float, str)
    if not isinstance(theirs, kinds) or not isinstance(ours, kinds):
        return False
    if isinstance(theirs, bool) or isinstance(ours, bool):
        return False
    try:
        return float(theirs) == float(ours)
    except ValueError:
        return False


def _answers(message: Any, rpc_id: Any) -> bool:
    return (
        rpc_id is not None
        and isinstance(message, dict)
        and _same_id(message.get("id"), rpc_id)
        and ("result" in message or "error" in message)
    )


def _answer_in(body: Any, rpc_id: Any) -> int | None:
    """Where the answer to ``rpc_id`` is in a JSON body: -1 for the body itself, an index
    in a JSON array of messages (clients accept both), None when it is in neither."""
    if _answers(body, rpc_id):
        return -1
    if isinstance(body, list):
        return next((at for at, message in enumerate(body) if _answers(message, rpc_id)), None)
    return None


async def _read_bounded(upstream: aiohttp.ClientResponse) -> bytes:
    body = bytearray()
    async for chunk in upstream.content.iter_chunked(256 * 1024):
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise AnswerTooLarge(f"the server's answer is over {MAX_ANSWER_BYTES} bytes")
    return bytes(body)


async def _drain(content: aiohttp.StreamReader) -> None:
    """After its answer the server ends a request's stream; reading that end (the agent
    already has its answer) lets the connection go back to the pool for the next call,
    where cutting it would cost a new TCP connection on both sides every call. Bounded in
    time and bytes: a server that keeps talking is cut as before."""
    left = DRAIN_BYTES
    with contextlib.suppress(TimeoutError, aiohttp.ClientError):
        async with asyncio.timeout(DRAIN_SECONDS):
            while left > 0 and (chunk := await content.readany()):
                left -= len(chunk)


async def _send(request: web.Request, response: web.StreamResponse) -> None:
    """The answer goes out now, not when the handler returns: neither settling nor its
    summary of the answer keeps the agent waiting."""
    if response.prepared:
        return
    with contextlib.suppress(ConnectionError):
        await response.prepare(request)
        await response.write_eof()


class McpServerDoor:
    def __init__(
        self,
        pipeline: Pipeline,
        directory: Directory,
        registry: McpRegistry,
        inflight: InflightStreams,
        body_limit: int,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self._pipeline = pipeline
        self._directory = directory
        self._registry = registry
        self._inflight = inflight
        self._body_limit = body_limit
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        self._client: aiohttp.ClientSession | None = None
        self._cancelling: set[asyncio.Task[None]] = set()
        self._streams: dict[str, int] = {}
        """Open GET streams by agent."""

    def add_routes(self, app: web.Application) -> None:
        app.cleanup_ctx.append(self._lifetime)
        for method in ("GET", "POST", "DELETE"):
            app.router.add_route(method, PATH, self.handle)

    async def _lifetime(self, _app: web.Application) -> AsyncIterator[None]:
        self._client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL_CONNECTIONS),
            timeout=self._timeout,
            auto_decompress=True,
            cookie_jar=aiohttp.DummyCookieJar(),  # one server's cookie is no one else's
        )
        yield
        await self._client.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await admit_agent(request, SOURCE)
        credential = presented_credential(request.headers)
        assert credential is not None
        identity = await self._directory.identify_agent(credential)
        server = await self._registry.get(identity.project.id, request.match_info["name"])
        caller = _Caller(
            credential,
            session_id_from(request.headers),
            identity.agent.id,
            identity.project.id,
            server,
        )
        if request.method == "GET":
            return await self._stream(request, caller)
        if request.method != "POST":
            return await self._pass_through(request, caller, None, None, request.method)
        body = await read_limited(request, self._body_limit)
        try:
            message = json.loads(body)
        except ValueError:
            return web.json_response(
                rpc_error(None, "the body is not JSON: send one JSON-RPC message", PARSE_ERROR),
                status=400,
            )
        if not isinstance(message, dict):
            return web.json_response(
                rpc_error(
                    None, "send one JSON-RPC message per request (no batches)", INVALID_REQUEST
                ),
                status=400,
            )
        clash = _key_clash(message)
        if clash is not None:
            return web.json_response(
                rpc_error(message.get("id"), clash, INVALID_REQUEST), status=400
            )
        method, rpc_id = message.get("method"), message.get("id")
        if rpc_id is None and method in DECIDED_METHODS:
            return web.json_response(
                rpc_error(
                    None, f"{method} needs an id: it is decided, and answered", INVALID_REQUEST
                ),
                status=400,
            )
        if rpc_id is None or not isinstance(method, str):
            what = method if isinstance(method, str) else "answer"
            return await self._pass_through(request, caller, body, None, what)
        if method == "tools/call":
            return await self._call_tool(request, caller, body, message)
        if method == "tools/list":
            return await self._forward(
                request, caller, body, rpc_id, lambda m: self._listing(caller, m), _Relay()
            )
        if method in ("resources/read", "prompts/get"):
            return await self._read(request, caller, body, message)
        return await self._pass_through(request, caller, body, rpc_id, method)

    async def _stream(self, request: web.Request, caller: _Caller) -> web.StreamResponse:
        """The server's GET stream, at most ``STREAMS_PER_AGENT`` an agent: one agent
        opening a hundred would take the pool every tenant's calls wait on."""
        held = self._streams.get(caller.agent_id, 0)
        if held >= STREAMS_PER_AGENT:
            message = (
                f"this agent already holds {held} streams from MCP servers through tether "
                f"(at most {STREAMS_PER_AGENT}); close one first"
            )
            return web.json_response(rpc_error(None, message), status=429)
        self._streams[caller.agent_id] = held + 1
        try:
            return await self._pass_through(request, caller, None, None, "GET")
        finally:
            left = self._streams[caller.agent_id] - 1
            if left:
                self._streams[caller.agent_id] = left
            else:
                del self._streams[caller.agent_id]

    async def _pass_through(
        self,
        request: web.Request,
        caller: _Caller,
        body: bytes | None,
        rpc_id: Any,
        what: str,
    ) -> web.StreamResponse:
        """A message the pipeline does not decide (``initialize``, a notification, an answer
        to the server, the server's GET stream, DELETE) is still the agent's: recorded,
        refused when the agent's session, agent or project is stopped, and cut by a kill
        while it runs (the GET stream carries the server's requests for hours)."""
        ctx = Context()
        action = self._action(caller, "relay", what)
        action.session_optional = True
        refusal = await self._pipeline.observe(action, "ok", f"{what} relayed", ctx)
        if refusal is not None:
            return web.json_response(
                rpc_error(rpc_id, f"tether refused this {what}: {refusal.reason}"),
                status=status_for(refusal.code),
            )
        relay = _Relay()
        session_id = ctx.session.id if ctx.session is not None else caller.session_id
        response, cut_by = await self._until_cut(
            caller, session_id, self._forward(request, caller, body, rpc_id, None, relay)
        )
        if cut_by is None:
            assert response is not None
            return response
        if relay.out is not None:
            # Ended, not dropped: the client then reconnects, and is refused on the record.
            with contextlib.suppress(ConnectionError):
                await relay.out.write_eof()
            return relay.out
        return web.json_response(
            rpc_error(rpc_id, f"tether stopped this {what}: {cut_by.reason}"),
            status=status_for(cut_by.code),
        )

    async def _until_cut(
        self,
        caller: _Caller,
        session_id: str | None,
        forward: Coroutine[Any, Any, web.StreamResponse],
    ) -> tuple[web.StreamResponse | None, Deny | None]:
        """``forward`` run as a stream the kill switch can cut: its response, or the
        verdict that cut it."""
        task = asyncio.create_task(forward)
        handle = StreamHandle(
            caller.agent_id, caller.project_id, session_id, lambda _: _cancel(task)
        )
        token = self._inflight.register(handle)
        try:
            return await task, None
        except asyncio.CancelledError:
            if handle.cut_by is None:
                raise
            return None, handle.cut_by
        finally:
            self._inflight.unregister(token)

    def _action(self, caller: _Caller, kind: str, name: str, **extra: Any) -> Action:
        server = caller.server.name
        if kind == "tool":
            verb, resource = f"mcp:{name}", f"mcp://{server}/{name}"
        elif kind == "relay":
            verb, resource = "mcp:relay", f"mcp://{server}"
        elif kind == "resource":
            verb, resource = "mcp:ReadResource", f"mcp://{server}/resources/{name}"
        else:
            verb, resource = "mcp:GetPrompt", f"mcp://{server}/prompts/{name}"
        named = "mcp_method" if kind == "relay" else "mcp_tool"
        return Action(
            source=SOURCE,
            credential=caller.credential,
            action=verb,
            resource=resource,
            session_id=caller.session_id,
            join_latest_session=caller.session_id is None,
            attributes={"mcp_server": server, named: name, "mcp_kind": kind},
            **extra,
        )

    async def _listing(self, caller: _Caller, message: dict[str, Any]) -> dict[str, Any]:
        """Pins what the server listed and keeps only the tools the pipeline would let run."""
        result = message.get("result")
        tools = result.get("tools") if isinstance(result, dict) else None
        if not isinstance(result, dict) or not isinstance(tools, list):
            return message
        listed = [tool for tool in tools if isinstance(tool, dict)]
        await self._registry.listed(caller.server, listed)
        shown = []
        for tool in listed:
            name = tool.get("name")
            if not isinstance(name, str):
                continue
            look = self._action(caller, "tool", name)
            look.attributes["any_arguments"] = True
            verdict = await self._pipeline.preview(look)
            if not isinstance(verdict, Deny):
                shown.append(tool)
        return {**message, "result": {**result, "tools": shown}}

    async def _read(
        self, request: web.Request, caller: _Caller, body: bytes, message: dict[str, Any]
    ) -> web.StreamResponse:
        params = message.get("params") or {}
        kind = "resource" if message["method"] == "resources/read" else "prompt"
        name = (
            params.get("uri" if kind == "resource" else "name")
            if isinstance(params, dict)
            else None
        )
        if not isinstance(name, str) or not name:
            what = "params.uri" if kind == "resource" else "params.name"
            return web.json_response(
                rpc_error(message["id"], f"{message['method']} needs {what}", INVALID_PARAMS)
            )
        decision = await self._pipeline.decide(self._action(caller, kind, name))
        if not decision.allowed:
            return web.json_response(
                rpc_error(
                    message["id"],
                    f"tether refused this {message['method']}: {decision.reason}",
                    data={"code": decision.code, "approval_id": decision.approval_id},
                )
            )
        started = time.perf_counter()
        relay = _Relay()
        try:
            response, cut_by = await self._until_cut(
                caller,
                decision.session_id,
                self._forward(request, caller, body, message["id"], None, relay),
            )
        except BaseException as exc:
            ended = f"the read ended without an answer to relay ({type(exc).__name__})"
            await self._settle(decision, relay, 499, started, ended, "error")
            raise
        if cut_by is not None:
            response = await self._cut(request, caller, message["id"], cut_by, relay, None)
        assert response is not None
        await _send(request, response)
        detail = cut_by.reason if cut_by is not None else ""
        await self._settle(decision, relay, response.status, started, detail)
        return response

    async def _call_tool(
        self, request: web.Request, caller: _Caller, body: bytes, message: dict[str, Any]
    ) -> web.StreamResponse:
        rpc_id = message["id"]
        params = message.get("params")
        tool = params.get("name") if isinstance(params, dict) else None
        arguments = (params.get("arguments") or {}) if isinstance(params, dict) else None
        if not isinstance(tool, str) or not tool or not isinstance(arguments, dict):
            return web.json_response(
                rpc_error(
                    rpc_id,
                    "tools/call needs params.name (a string) and params.arguments (an object)",
                    INVALID_PARAMS,
                )
            )
        name = f"mcp__{caller.server.name}__{tool}"
        fingerprint = tool_use_fingerprint(name, arguments)
        tool_use = ToolUse(new_id(), name, arguments, fingerprint=fingerprint)
        action = self._action(
            caller,
            "tool",
            tool,
            arguments=_string_arguments(arguments),
            tool_use=tool_use,
            fingerprint=fingerprint,
        )
        action.attributes["input_summary"] = redacted_summary(arguments)
        decision = await self._pipeline.decide(action)
        if not decision.allowed:
            return web.json_response(tool_refusal(rpc_id, decision.reason, decision.code))
        started = time.perf_counter()
        relay = _Relay()

        async def keep(answer: dict[str, Any]) -> dict[str, Any]:
            """Counted before the agent sees it, so its next call meets the count; what the
            counting refuses (a session stopped meanwhile, guard memory out of reach)
            reaches the agent instead of the answer."""
            relay.answer = answer
            refusal = await self._observe(caller, decision, tool_use, answer)
            if refusal is None:
                return answer
            relay.answer = tool_refusal(rpc_id, refusal.reason, refusal.code)
            return relay.answer

        forward = asyncio.create_task(self._forward(request, caller, body, rpc_id, keep, relay))
        handle = StreamHandle(
            caller.agent_id, caller.project_id, decision.session_id, lambda _: _cancel(forward)
        )
        token = self._inflight.register(handle)
        try:
            try:
                response = await forward
            except asyncio.CancelledError:
                if handle.cut_by is None:
                    raise
                refusal = tool_refusal(rpc_id, handle.cut_by.reason, handle.cut_by.code)
                response = await self._cut(request, caller, rpc_id, handle.cut_by, relay, refusal)
            finally:
                self._inflight.unregister(token)
        except BaseException as exc:
            ended = f"the call ended without an answer to relay ({type(exc).__name__})"
            await self._settle(decision, relay, 499, started, ended, "error")
            raise
        detail = handle.cut_by.reason if handle.cut_by else ""
        try:
            await _send(request, response)
        finally:
            await self._settle(decision, relay, response.status, started, detail)
        return response

    async def _cut(
        self,
        request: web.Request,
        caller: _Caller,
        rpc_id: Any,
        cut_by: Deny,
        relay: _Relay,
        refusal: dict[str, Any] | None,
    ) -> web.StreamResponse:
        """A kill stopped the call while upstream worked on it: upstream is told to cancel,
        and the agent gets tether's reason as the answer (``refusal``: a tool's, else a
        JSON-RPC error)."""
        cancel = asyncio.create_task(self._cancel_upstream(request, caller, rpc_id, cut_by.reason))
        self._cancelling.add(cancel)
        cancel.add_done_callback(self._cancelling.discard)
        if refusal is None:
            refusal = rpc_error(rpc_id, f"tether stopped this call: {cut_by.reason}")
        if relay.ended:
            assert relay.out is not None
            return relay.out
        if relay.out is not None:
            with contextlib.suppress(ConnectionError):
                await relay.out.write(sse.render(["event: message"], refusal))
                await relay.out.write_eof()
            return relay.out
        return web.json_response(refusal)

    async def _cancel_upstream(
        self, request: web.Request, caller: _Caller, rpc_id: Any, reason: str
    ) -> None:
        assert self._client is not None
        notice = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": rpc_id, "reason": f"tether: {reason}"},
        }
        try:
            headers = await self._headers(request, caller.server)
            async with self._client.post(
                caller.server.url,
                data=json.dumps(notice),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=CANCEL_SECONDS),
                allow_redirects=False,
            ) as answer:
                await answer.read()
        except (aiohttp.ClientError, TimeoutError, TokenUnavailable) as exc:
            log.warning("telling MCP server %s to cancel failed: %s", caller.server.name, exc)

    async def _settle(
        self,
        decision: Decision,
        relay: _Relay,
        status: int,
        started: float,
        detail: str,
        ended: str | None = None,
    ) -> None:
        """Whatever way the call ended: an answer relayed, a kill's cut, or (``ended``) an
        error or a shutdown cancelling the handler; the observation held for it is written
        with this outcome."""
        answer = relay.answer or {}
        result = answer.get("result")
        failed = "error" in answer or (isinstance(result, dict) and bool(result.get("isError")))
        if relay.answer is None and not detail and ended is None and status < 400:
            ended, detail = "error", "the server's answer never came: nothing was relayed as one"
        if ended is None:
            ended = "cut" if detail else ("error" if failed or status >= 400 else "ok")
        outcome = Outcome(
            result=ended,
            status=status,
            latency_ms=(time.perf_counter() - started) * 1000,
            detail=detail or redacted_summary(result if result is not None else answer),
            upstream_reached=True,
            upstream_overloaded=status in (429, 502, 503, 504),
        )
        await self._pipeline.settle_later(decision, outcome)

    async def _observe(
        self, caller: _Caller, decision: Decision, tool_use: ToolUse, answer: dict[str, Any]
    ) -> Deny | None:
        """The tool's answer, counted by the guards as a hook's PostToolUse is: the same
        call with the same answer again and again is a loop. Fails closed: an answer tether
        could not count (a stopped session, guard memory out of reach) is refused."""
        result = answer.get("result")
        failed = "error" in answer or (isinstance(result, dict) and bool(result.get("isError")))
        content = result.get("content") if isinstance(result, dict) else answer.get("error")
        assert decision.action is not None
        try:
            return await self._pipeline.observe(
                Action(
                    source=SOURCE,
                    credential=caller.credential,
                    action=f"tool_result:{tool_use.name}",
                    resource=decision.action.resource,
                    session_id=decision.session_id,
                    attributes={
                        "mcp_server": caller.server.name,
                        "result_summary": redacted_summary(content),
                    },
                    tool_use=tool_use,
                    tool_results=[
                        ToolResult(tool_use.id, failed, result_fingerprint([content, failed]))
                    ],
                ),
                "error" if failed else "ok",
                f"{tool_use.name} finished",
                settled_with=decision,
            )
        except TetherError as exc:
            log.warning("counting the answer of %s failed: %s", tool_use.name, exc.message)
            return Deny(exc.code, f"tether could not count this tool's answer: {exc.message}")
        except Exception:
            log.exception("counting the answer of %s failed", tool_use.name)
            return Deny("internal_error", "tether could not count this tool's answer; withheld")

    async def _headers(self, request: web.Request, server: McpServer) -> dict[str, str]:
        headers = {
            name: request.headers[name] for name in PASSED_HEADERS if name in request.headers
        }
        headers.setdefault("Content-Type", "application/json")
        headers.setdefault("Accept", "application/json, text/event-stream")
        assert self._client is not None
        headers.update(await self._registry.upstream_headers(server, self._client))
        return headers

    async def _forward(
        self,
        request: web.Request,
        caller: _Caller,
        body: bytes | None,
        rpc_id: Any,
        rewrite: sse.Rewrite | None,
        relay: _Relay,
    ) -> web.StreamResponse:
        assert self._client is not None
        try:
            retried = False
            while True:
                headers = await self._headers(request, caller.server)
                if body is None:
                    headers.pop("Content-Type", None)
                async with self._client.request(
                    request.method,
                    caller.server.url,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                ) as upstream:
                    if (
                        upstream.status == 401
                        and not retried
                        and self._registry.rejected(caller.server, headers)
                    ):
                        retried = True
                        continue
                    return await self._relay(request, upstream, rpc_id, rewrite, relay)
        except TokenUnavailable as exc:
            return web.json_response(
                rpc_error(rpc_id, f"MCP server {caller.server.name}: {exc.message}"),
                status=502,
            )
        except (AnswerTooLarge, sse.EventTooLarge, LineTooLong) as exc:
            if relay.out is not None:
                relay.out.force_close()
                return relay.out
            return web.json_response(
                rpc_error(rpc_id, f"MCP server {caller.server.name}: {exc}; withheld"),
                status=502,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            if relay.out is not None:
                return relay.out
            return web.json_response(
                rpc_error(
                    rpc_id,
                    f"MCP server {caller.server.name} could not be reached through tether: "
                    f"{type(exc).__name__}",
                ),
                status=502,
            )

    async def _relay(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        rpc_id: Any,
        rewrite: sse.Rewrite | None,
        relay: _Relay,
    ) -> web.StreamResponse:
        """An SSE stream is relayed event by event and ends with the answer to ``rpc_id``
        (where the spec has the server end it), so the agent's connection is free for its
        next call; a JSON answer is relayed as the server sent it unless ``rewrite``
        changed it."""
        headers = {h: upstream.headers[h] for h in RETURNED_HEADERS if h in upstream.headers}
        ctype = upstream.headers.get("Content-Type", "")
        if ctype.startswith("text/event-stream"):
            out = web.StreamResponse(
                status=upstream.status,
                headers={
                    **headers,
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                },
            )
            await out.prepare(request)
            relay.out = out
            answered = False
            async for lines in sse.events(upstream.content, MAX_ANSWER_BYTES):
                message = sse.data_of(lines)
                answered = _answers(message, rpc_id)
                rewritten = await rewrite(message) if rewrite and answered else None
                if rewritten is not None and rewritten is not message:
                    event = sse.render(lines, rewritten)
                else:
                    event = sse.render(lines)
                if answered:
                    await out.write_eof(event)  # the answer and the stream's end: one write
                    break
                await out.write(event)
            else:
                await out.write_eof()
            relay.ended = True
            if answered:
                await _drain(upstream.content)
            return out
        raw = await _read_bounded(upstream)
        if rewrite is not None and 200 <= upstream.status < 300:
            return await self._rewritten(raw, rpc_id, rewrite, headers)
        if ctype:
            headers["Content-Type"] = ctype
        return web.Response(body=raw, status=upstream.status, headers=headers)

    @staticmethod
    async def _rewritten(
        raw: bytes, rpc_id: Any, rewrite: sse.Rewrite, headers: dict[str, str]
    ) -> web.StreamResponse:
        """A 2xx answer to a call tether must read (a tool's answer to count, a listing to
        pin) is read as clients read it: any 2xx, one message or an array of them. One
        tether cannot read is withheld, not relayed unread."""
        body: Any = None
        with contextlib.suppress(ValueError):
            body = json.loads(raw)
        at = _answer_in(body, rpc_id)
        if at is None:
            return web.json_response(
                rpc_error(rpc_id, "the MCP server's answer could not be read by tether; withheld"),
                status=502,
                headers=headers,
            )
        if at == -1:
            return web.json_response(await rewrite(body), headers=headers)
        body[at] = await rewrite(body[at])
        return web.json_response(body, headers=headers)


def _key_clash(message: dict[str, Any]) -> str | None:
    """Keys of the message, its params or a tool's arguments that differ only in case: a
    server whose JSON reader matches keys case-insensitively (Go's) reads the one tether
    did not decide on (``"method": "ping", "Method": "tools/call"``)."""
    params = message.get("params")
    arguments = params.get("arguments") if isinstance(params, dict) else None
    for where, fields in (("the message", message), ("params", params), ("arguments", arguments)):
        if not isinstance(fields, dict):
            continue
        seen: dict[str, str] = {}
        for key in fields:
            other = seen.setdefault(key.casefold(), key)
            if other != key:
                return f"{where} has both {other!r} and {key!r}: send each key once"
    return None
