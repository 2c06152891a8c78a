"""A bare aiohttp pass-through: each request relayed to the upstream as it is, the answer
streamed back. No identity, policy, budget, audit: what a Python proxy on this machine
costs before it does anything (uvloop, as tether runs).

    python bench/comparison/passthrough.py --port 8100 --upstream http://127.0.0.1:9999
"""

from __future__ import annotations

import argparse

import aiohttp
import uvloop
from aiohttp import web

FORWARDED = ("x-api-key", "anthropic-version", "anthropic-beta", "content-type")


async def healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def build(upstream: str) -> web.Application:
    async def open_client(app: web.Application) -> None:
        app["client"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def close_client(app: web.Application) -> None:
        await app["client"].close()

    async def relay(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k in FORWARDED if (v := request.headers.get(k)) is not None}
        async with request.app["client"].post(
            upstream + request.path_qs, data=await request.read(), headers=headers
        ) as answer:
            response = web.StreamResponse(
                status=answer.status, headers={"Content-Type": answer.content_type}
            )
            await response.prepare(request)
            async for chunk in answer.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.on_startup.append(open_client)
    app.on_cleanup.append(close_client)
    app.router.add_post("/v1/messages", relay)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    web.run_app(
        build(args.upstream.rstrip("/")),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
