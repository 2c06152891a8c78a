"""Admin: a project's Google service account, for Claude on Vertex AI through ``/vertex``
(sealed at rest; the key is never shown again)."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from tether.admin.appkeys import runtime_of
from tether.admin.responses import model_response
from tether.admin.routing import routes
from tether.admin.schemas import Strict
from tether.gateway.vertex.tokens import GCP_PROVIDER, GcpProjectConfig
from tether.store.changes import Change
from tether.web.bodies import read_model

__all__ = ["GcpCredentialsOut", "GcpCredentialsPut", "ServiceAccountKey"]


class ServiceAccountKey(BaseModel):
    """A service account's JSON key file as Google gives it (other fields kept as they are)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["service_account"]
    project_id: str = Field(min_length=1, max_length=128)
    private_key: str = Field(min_length=1, max_length=16_384)
    client_email: str = Field(min_length=3, max_length=256)
    token_uri: str = Field(pattern=r"^https?://", max_length=512)


class GcpCredentialsPut(Strict):
    service_account: ServiceAccountKey = Field(
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
    configured: bool = Field(description="whether the project has a service account")
    gcp_project: str | None
    client_email: str | None
    endpoint_url: str | None

    @classmethod
    def of(cls, project: str, config: GcpProjectConfig | None) -> GcpCredentialsOut:
        if config is None:
            return cls(
                project=project,
                configured=False,
                gcp_project=None,
                client_email=None,
                endpoint_url=None,
            )
        return cls(
            project=project,
            configured=True,
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
        payload.service_account.model_dump(),
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
    "Show the project's Vertex settings (the service account's name, never its key; "
    "configured: false when it has none)",
    response=GcpCredentialsOut,
)
async def show_gcp_credentials(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    sealed = await runtime.credentials.reveal(project.id, GCP_PROVIDER)
    config = GcpProjectConfig.loads(sealed) if sealed else None
    return model_response(GcpCredentialsOut.of(project.name, config))
