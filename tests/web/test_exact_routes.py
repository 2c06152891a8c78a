"""Exact paths (``POST /v1/messages``) skip aiohttp's router and reach their handler inside
the same middleware; anything the router must decide (another method, an unknown path,
``Expect: 100-continue``, a sub-application chosen by host name) still goes through it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from aiohttp.web_request import Request

from tests.support.databases import sqlite_url
from tests.support.server import RunningTether, start_tether
from tether.web.exact_routes import ExactRoutesRunner


@pytest.fixture
def tether(tmp_path: Path) -> Iterator[RunningTether]:
    server = start_tether(tmp_path / "data", sqlite_url(str(tmp_path)))
    yield server
    server.stop()


def _count_router_lookups(tether: RunningTether) -> list[str]:
    """The paths the running server's router is asked to resolve from now on."""
    router = tether._runner.app.router
    resolve = router.resolve
    asked: list[str] = []

    async def counted(request: Request) -> web.AbstractMatchInfo:
        asked.append(f"{request.method} {request.path}")
        return await resolve(request)

    router.resolve = counted  # type: ignore[method-assign]
    return asked


def _expect_continue(tether: RunningTether, body: bytes) -> bytes:
    """A Messages call that waits for ``100 Continue`` before its body: everything the
    server answered (a refusal from the headers may follow the interim answer at once)."""
    port = int(tether.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: tether\r\nx-api-key: tth_not_a_key\r\n"
            b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        )
        chunks = [sock.recv(1024)]
        with contextlib.suppress(OSError):  # already refused and closed
            sock.sendall(body)
        while chunk := sock.recv(65_536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_messages_calls_skip_the_router_and_what_it_must_decide_does_not(
    tether: RunningTether,
) -> None:
    asked = _count_router_lookups(tether)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": []}
    with httpx.Client(base_url=tether.url, timeout=30) as client:
        refused = client.post("/v1/messages", json=body, headers={"x-api-key": "tth_not_a_key"})
        assert refused.status_code == 401, refused.text
        assert refused.headers["x-should-retry"] == "false"
        assert asked == []

        wrong_method = client.get("/v1/messages")
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error"]["code"] == "method_not_allowed"
        assert wrong_method.headers["Allow"] == "POST"
        unknown = client.post("/v1/nothing-here", json=body)
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "not_found"
    assert asked == ["GET /v1/messages", "POST /v1/nothing-here"]

    answered = _expect_continue(tether, json.dumps(body).encode())
    interim, final = answered.split(b"\r\n\r\n", 1)
    assert interim == b"HTTP/1.1 100 Continue", answered[:200]
    assert final.startswith(b"HTTP/1.1 401 "), answered[:200]
    assert asked[-1] == "POST /v1/messages"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NAME = web.AppKey("name", str)
SEEN = web.RequestKey("seen", list[str])


def _app(tenant: bool) -> web.Application:
    """Two middlewares noting their order, a response-prepare signal, ``POST /x`` (and
    ``GET /y``, so ``HEAD /y`` too) on the main application; with ``tenant``, ``POST /x``
    also on a sub-application for the host ``tenant.example``."""

    @web.middleware
    async def outer(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[SEEN] = ["outer"]
        return await handler(request)

    @web.middleware
    async def inner(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[SEEN].append("inner")
        return await handler(request)

    async def where(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "app": request.config_dict[NAME],
                "current": request.match_info.current_app[NAME],
                "route": request.match_info.route.resource.canonical,  # type: ignore[union-attr]
                "seen": request.get(SEEN, []),
            }
        )

    async def prepared(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["x-prepared"] = request.method

    app = web.Application(middlewares=[outer, inner])
    app[NAME] = "main"
    app.router.add_post("/x", where)
    app.router.add_get("/y", where)
    app.on_response_prepare.append(prepared)
    if tenant:
        sub = web.Application()
        sub[NAME] = "tenant"
        sub.router.add_post("/x", where)
        app.add_domain("tenant.example", sub)
    return app


def _answers(runner_class: type[web.AppRunner], tenant: bool) -> tuple[list[object], int]:
    """What ``POST /x``, ``GET /y`` and ``HEAD /y`` (and ``POST /x`` for the tenant's
    host) answered, and how many times the router was asked."""

    async def serve_and_ask() -> tuple[list[object], int]:
        app = _app(tenant)
        resolve = app.router.resolve
        asked = []

        async def counted(request: Request) -> web.AbstractMatchInfo:
            asked.append(request.rel_url.path)
            return await resolve(request)

        app.router.resolve = counted  # type: ignore[method-assign]
        runner = runner_class(app)
        await runner.setup()
        asked.clear()  # the shortcut's own look-ups at start-up
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                answers = [await client.post("/x"), await client.get("/y")]
                head = await client.head("/y")
                if tenant:
                    answers.append(await client.post("/x", headers={"Host": "tenant.example"}))
            assert all(a.status_code == 200 for a in [*answers, head]), [*answers, head]
            return [
                *[(a.json(), a.headers["x-prepared"]) for a in answers],
                (head.status_code, head.headers["x-prepared"]),
            ], len(asked)
        finally:
            await runner.cleanup()

    return asyncio.run(serve_and_ask())


def test_the_shortcut_answers_as_the_router_would_with_the_same_middlewares() -> None:
    main = {"app": "main", "current": "main", "seen": ["outer", "inner"]}
    expected = [
        ({**main, "route": "/x"}, "POST"),
        ({**main, "route": "/y"}, "GET"),
        (200, "HEAD"),
    ]
    assert _answers(web.AppRunner, tenant=False) == (expected, 3)
    assert _answers(ExactRoutesRunner, tenant=False) == (expected, 0)


def test_a_host_name_sub_application_keeps_every_request_on_the_router() -> None:
    """Its host decides where a path goes, so no path is taken past the router."""
    tenant = {"app": "tenant", "current": "tenant", "route": "/x", "seen": ["outer", "inner"]}
    answers, asked = _answers(ExactRoutesRunner, tenant=True)
    assert answers == _answers(web.AppRunner, tenant=True)[0]
    assert answers[-2] == (tenant, "POST") and asked == 4
