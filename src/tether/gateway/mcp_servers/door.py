"""``/mcp/servers/NAME``: MCP Streamable HTTP relayed to a project's registered server.

The door only translates. It authenticates the agent's tether key, forwards each message
with the server's own credential (never the agent's key), and turns three methods into
pipeline actions: ``tools/call`` (``mcp:TOOL`` on ``mcp://SERVER/TOOL``, arguments in
the policy's context), ``resources/read`` and ``prompts/get`` (reads). ``tools/list`` is
pinned and shows only the tools a look ahead through the pipeline would not refuse.
Everything else (``initialize``, notifications, the agent's answers to server requests,
the server-initiated GET stream, DELETE) passes through, with ``Mcp-Session-Id`` and
``MCP-Protocol-Version`` carried both ways so the two sides negotiate as they would
directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from tether.clock import new_id
from tether.errors import TetherError
from tether.gateway.anthropic.proxy import session_id_from
from tether.gateway.credentials import admit_agent, presented_credential
from tether.gateway.mcp_servers import sse
from tether.gateway.mcp_servers.replies import INVALID_REQUEST, rpc_error, tool_refusal
from tether.guards.fingerprints import result_fingerprint, tool_use_fingerprint
from tether.identity.directory import Directory
from tether.kill.inflight import InflightStreams, StreamHandle
from tether.mcp_servers.oauth import TokenUnavailable
from tether.mcp_servers.registry import McpRegistry
from tether.pipeline import Action, Decision, Deny, Pipeline
from tether.pipeline.outcome import Outcome, ToolResult, ToolUse
from tether.pipeline.stages.mcp_tools import SOURCE
from tether.records.mcp_servers import McpServer
from tether.redaction.text import redacted_summary
from tether.web.bodies import read_limited

__all__ = ["PATH", "McpServerDoor"]

log = logging.getLogger(__name__)

PATH = "/mcp/servers/{name}"
PASSED_HEADERS = (
    "Accept",
    "Content-Type",
    "Mcp-Session-Id",
    "MCP-Protocol-Version",
    "Last-Event-ID",
)
RETURNED_HEADERS = ("Mcp-Session-Id", "MCP-Protocol-Version")
INVALID_PARAMS = -32602
PARSE_ERROR = -32700
CANCEL_SECONDS = 5.0
DRAIN_SECONDS = 0.05
DRAIN_BYTES = 65_536
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


def _answers(message: dict[str, Any], rpc_id: Any) -> bool:
    return (
        rpc_id is not None
        and message.get("id") == rpc_id
        and ("result" in message or "error" in message)
    )


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

    def add_routes(self, app: web.Application) -> None:
        app.cleanup_ctx.append(self._lifetime)
        for method in ("GET", "POST", "DELETE"):
            app.router.add_route(method, PATH, self.handle)

    async def _lifetime(self, _app: web.Application) -> AsyncIterator[None]:
        self._client = aiohttp.ClientSession(timeout=self._timeout, auto_decompress=True)
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
        if request.method != "POST":
            return await self._forward(request, caller, None, None, None, _Relay())
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
            return await self._forward(request, caller, body, None, None, _Relay())
        if method == "tools/call":
            return await self._call_tool(request, caller, body, message)
        if method == "tools/list":
            return await self._forward(
                request, caller, body, rpc_id, lambda m: self._listing(caller, m), _Relay()
            )
        if method in ("resources/read", "prompts/get"):
            return await self._read(request, caller, body, message)
        return await self._forward(request, caller, body, rpc_id, None, _Relay())

    def _action(self, caller: _Caller, kind: str, name: str, **extra: Any) -> Action:
        server = caller.server.name
        if kind == "tool":
            verb, resource = f"mcp:{name}", f"mcp://{server}/{name}"
        elif kind == "resource":
            verb, resource = "mcp:ReadResource", f"mcp://{server}/resources/{name}"
        else:
            verb, resource = "mcp:GetPrompt", f"mcp://{server}/prompts/{name}"
        return Action(
            source=SOURCE,
            credential=caller.credential,
            action=verb,
            resource=resource,
            session_id=caller.session_id,
            join_latest_session=caller.session_id is None,
            attributes={"mcp_server": server, "mcp_tool": name, "mcp_kind": kind},
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
        response = await self._forward(request, caller, body, message["id"], None, relay)
        await _send(request, response)
        await self._settle(decision, relay, response.status, started, "")
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
                response = await self._cut(request, caller, rpc_id, handle.cut_by, relay)
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
        self, request: web.Request, caller: _Caller, rpc_id: Any, cut_by: Deny, relay: _Relay
    ) -> web.StreamResponse:
        """A kill stopped the call while upstream worked on it: upstream is told to cancel,
        and the agent gets tether's reason as the tool's answer."""
        cancel = asyncio.create_task(self._cancel_upstream(request, caller, rpc_id, cut_by.reason))
        self._cancelling.add(cancel)
        cancel.add_done_callback(self._cancelling.discard)
        refusal = tool_refusal(rpc_id, cut_by.reason, cut_by.code)
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
                    request.method, caller.server.url, data=body, headers=headers
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
            async for lines in sse.events(upstream.content):
                message = sse.data_of(lines)
                answered = isinstance(message, dict) and _answers(message, rpc_id)
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
        raw = await upstream.read()
        answer: Any = None
        if rewrite and ctype.startswith("application/json") and upstream.status == 200:
            with contextlib.suppress(ValueError):
                answer = json.loads(raw)
            if isinstance(answer, dict) and _answers(answer, rpc_id):
                rewritten = await rewrite(answer)
                if rewritten is not answer:
                    return web.json_response(rewritten, headers=headers)
        if ctype:
            headers["Content-Type"] = ctype
        return web.Response(body=raw, status=upstream.status, headers=headers)


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
