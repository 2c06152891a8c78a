"""Admin: admin tokens (admin or viewer role)."""

from __future__ import annotations

from aiohttp import web

from tether.admin.appkeys import caller_of, runtime_of
from tether.admin.responses import model_list_response, model_response
from tether.admin.routing import routes
from tether.admin.schemas import TokenCreate, TokenCreated, TokenOut
from tether.errors import Conflict
from tether.web.bodies import read_model


@routes.route(
    "POST",
    "/tokens",
    "tokens.create",
    "Create an admin token; its secret is shown once",
    body=TokenCreate,
    response=TokenCreated,
    status=201,
)
async def create_token(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    payload = await read_model(request, TokenCreate, runtime.settings.max_body_bytes)
    token, secret = await runtime.admin_tokens.create(payload.name, payload.role)
    return model_response(TokenCreated(token=TokenOut.of(token), secret=secret), status=201)


@routes.route(
    "GET",
    "/tokens",
    "tokens.list",
    "List admin tokens (never their secrets)",
    response=TokenOut,
    many=True,
)
async def list_tokens(request: web.Request) -> web.Response:
    tokens = await runtime_of(request).admin_tokens.all()
    return model_list_response([TokenOut.of(t) for t in tokens])


@routes.route("DELETE", "/tokens/{name}", "tokens.revoke", "Revoke an admin token")
async def revoke_token(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name == caller_of(request).name:
        raise Conflict("a token cannot revoke itself; use another admin token")
    await runtime_of(request).admin_tokens.revoke(name)
    return web.Response(status=204)
