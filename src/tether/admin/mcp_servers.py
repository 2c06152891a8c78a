"""Admin: a project's remote MCP servers, their sealed credentials and pinned tools."""

from __future__ import annotations

from aiohttp import web

from tether.admin.appkeys import runtime_of
from tether.admin.mcp_schemas import McpServerAdd, McpServerOut, McpToolOut
from tether.admin.responses import model_list_response, model_response
from tether.admin.routing import routes
from tether.clock import iso_ms
from tether.mcp_servers.credentials import parse_credential
from tether.records.mcp_servers import McpServer
from tether.web.bodies import read_model


def _out(server: McpServer, project_name: str, base_url: str) -> McpServerOut:
    tools = [
        McpToolOut(
            name=name,
            state="pinned" if not pin.withheld else ("new" if pin.pinned is None else "changed"),
            destructive=pin.destructive,
        )
        for name, pin in sorted(server.tools.items())
    ]
    return McpServerOut(
        name=server.name,
        project=project_name,
        url=server.url,
        auth=server.auth_kind,
        agent_url=f"{base_url}/mcp/servers/{server.name}",
        listed=server.listed,
        withheld=server.withheld,
        tools=tools,
        created_at=iso_ms(server.created_at),
        updated_at=iso_ms(server.updated_at),
    )


def _base_url(request: web.Request) -> str:
    public = runtime_of(request).settings.public_url
    return (public or f"{request.scheme}://{request.host}").rstrip("/")


@routes.route(
    "POST",
    "/projects/{project}/mcp-servers",
    "mcp.add",
    "Register a remote MCP server; its credential is sealed and never returned",
    body=McpServerAdd,
    response=McpServerOut,
    status=201,
)
async def add_mcp_server(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    payload = await read_model(request, McpServerAdd, runtime.settings.max_body_bytes)
    secret = parse_credential(payload.auth, payload.credential)
    server = await runtime.mcp_servers.add(
        project.id, payload.name, payload.url, payload.auth, secret
    )
    return model_response(_out(server, project.name, _base_url(request)), status=201)


@routes.route(
    "GET",
    "/projects/{project}/mcp-servers",
    "mcp.list",
    "List a project's MCP servers (never their credentials)",
    response=McpServerOut,
    many=True,
)
async def list_mcp_servers(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    servers = await runtime.mcp_servers.of_project(project.id)
    base = _base_url(request)
    return model_list_response([_out(s, project.name, base) for s in servers])


@routes.route(
    "GET",
    "/projects/{project}/mcp-servers/{name}",
    "mcp.show",
    "One MCP server: its tools as pinned, and those withheld until accepted",
    response=McpServerOut,
)
async def show_mcp_server(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    server = await runtime.mcp_servers.get(project.id, request.match_info["name"])
    return model_response(_out(server, project.name, _base_url(request)))


@routes.route(
    "POST",
    "/projects/{project}/mcp-servers/{name}/accept",
    "mcp.accept",
    "Accept the tool definitions the server last listed (changed and new tools run again)",
    response=McpServerOut,
)
async def accept_mcp_tools(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    server = await runtime.mcp_servers.accept(project.id, request.match_info["name"])
    return model_response(_out(server, project.name, _base_url(request)))


@routes.route(
    "DELETE", "/projects/{project}/mcp-servers/{name}", "mcp.remove", "Remove an MCP server"
)
async def remove_mcp_server(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    await runtime.mcp_servers.remove(project.id, request.match_info["name"])
    return web.Response(status=204)
