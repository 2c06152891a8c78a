"""Admin: a project's Google service account, for Claude on Vertex AI through ``/vertex``
(sealed at rest; the key is never shown again)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from tether.admin.appkeys import runtime_of
from tether.admin.responses import model_response
from tether.admin.routing import routes
from tether.admin.schemas import Strict
from tether.errors import NotFound
from tether.gateway.vertex.tokens import GCP_PROVIDER, GcpProjectConfig
from tether.store.changes import Change
from tether.web.bodies import read_model

__all__ = ["GcpCredentialsOut", "GcpCredentialsPut"]


class GcpCredentialsPut(Strict):
    service_account: dict[str, Any] = Field(
        description="the service account's key file as Google gives it (JSON)"
    )
    endpoint_url: str | None = Field(
        None,
        pattern=r"^https?://",
        max_length=512,
        description="Vertex AI endpoint instead of https://{region}-aiplatform.googleapis.com",
    )


class GcpCredentialsOut(BaseModel):
    project: str
    gcp_project: str
    client_email: str
    endpoint_url: str | None

    @classmethod
    def of(cls, project: str, config: GcpProjectConfig) -> GcpCredentialsOut:
        return cls(
            project=project,
            gcp_project=config.project_id,
            client_email=config.client_email,
            endpoint_url=config.endpoint_url,
        )


@routes.route(
    "PUT",
    "/projects/{project}/gcp",
    "gcp.set_credentials",
    "Store the project's Google service account for the Vertex door (encrypted; the key "
    "is never shown again)",
    body=GcpCredentialsPut,
    response=GcpCredentialsOut,
)
async def put_gcp_credentials(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    payload = await read_model(request, GcpCredentialsPut, runtime.settings.max_body_bytes)
    config = GcpProjectConfig(
        GcpProjectConfig.check_key(payload.service_account),
        payload.endpoint_url.rstrip("/") if payload.endpoint_url else None,
    )
    await runtime.credentials.put(project.id, GCP_PROVIDER, config.dumps())
    await runtime.upstream_keys.apply(Change(0, "credential", project.id))
    runtime.vertex_tokens.forget(project.id)
    return model_response(GcpCredentialsOut.of(project.name, config))


@routes.route(
    "GET",
    "/projects/{project}/gcp",
    "gcp.show_credentials",
    "Show the project's Vertex settings (the service account's name, never its key)",
    response=GcpCredentialsOut,
)
async def show_gcp_credentials(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    sealed = await runtime.credentials.reveal(project.id, GCP_PROVIDER)
    if not sealed:
        raise NotFound(f"project {project.name!r} has no Google service account")
    return model_response(GcpCredentialsOut.of(project.name, GcpProjectConfig.loads(sealed)))
