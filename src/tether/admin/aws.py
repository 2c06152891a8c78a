"""Admin: the AWS credential broker — a project's real AWS credential and each agent's
own access key pair (the secret shown once, at issue)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from tether.admin.appkeys import runtime_of
from tether.admin.responses import model_list_response, model_response
from tether.admin.routing import routes
from tether.admin.schemas import Strict
from tether.clock import iso_ms
from tether.errors import NotFound
from tether.gateway.aws.upstream import AWS_PROVIDER, AwsProjectConfig
from tether.records.fleet import AgentAwsKey
from tether.store.changes import Change
from tether.web.bodies import read_model

__all__ = ["AwsCredentialsOut", "AwsCredentialsPut", "AwsKeyIssued", "AwsKeyOut"]


class AwsCredentialsPut(Strict):
    access_key_id: str = Field(min_length=4, max_length=128, pattern=r"^[A-Za-z0-9]+$")
    secret_access_key: str = Field(min_length=8, max_length=256)
    role_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z\-]*:iam::\d{12}:role/.+$",
        description="assume this role per agent (RoleSessionName and SourceIdentity = agent)",
    )
    endpoint_url: str | None = Field(
        None, pattern=r"^https?://", max_length=512, description="upstream instead of AWS"
    )
    region: str = Field("us-east-1", pattern=r"^[a-z0-9\-]{2,32}$")
    account_id: str | None = Field(None, pattern=r"^\d{12}$")


class AwsCredentialsOut(BaseModel):
    project: str
    access_key_id: str = Field(description="its first characters only")
    role_arn: str | None
    endpoint_url: str | None
    region: str
    account_id: str | None

    @classmethod
    def of(cls, project: str, config: AwsProjectConfig) -> AwsCredentialsOut:
        return cls(
            project=project,
            access_key_id=config.access_key_id[:8] + "…",
            role_arn=config.role_arn,
            endpoint_url=config.endpoint_url,
            region=config.region,
            account_id=config.account_id,
        )


class AwsKeyOut(BaseModel):
    agent: str
    access_key_id: str
    created_at: str | None
    revoked_at: str | None

    @classmethod
    def of(cls, agent: str, key: AgentAwsKey) -> AwsKeyOut:
        return cls(
            agent=agent,
            access_key_id=key.access_key_id,
            created_at=iso_ms(key.created_at),
            revoked_at=iso_ms(key.revoked_at) if key.revoked_at else None,
        )


class AwsKeyIssued(BaseModel):
    agent: str
    access_key_id: str
    secret_access_key: str = Field(description="shown this once; store it now")
    created_at: str | None


class AwsKeysRevoked(BaseModel):
    agent: str
    revoked: int


@routes.route(
    "PUT",
    "/projects/{project}/aws",
    "aws.set_credentials",
    "Store the project's AWS credential for the broker (encrypted; the secret is never "
    "shown again)",
    body=AwsCredentialsPut,
    response=AwsCredentialsOut,
)
async def put_aws_credentials(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    payload = await read_model(request, AwsCredentialsPut, runtime.settings.max_body_bytes)
    config = AwsProjectConfig(
        access_key_id=payload.access_key_id,
        secret_access_key=payload.secret_access_key,
        role_arn=payload.role_arn,
        endpoint_url=payload.endpoint_url.rstrip("/") if payload.endpoint_url else None,
        region=payload.region,
        account_id=payload.account_id,
    )
    await runtime.credentials.put(project.id, AWS_PROVIDER, config.dumps())
    await runtime.upstream_keys.apply(Change(0, "credential", project.id))
    runtime.aws.forget(project.id)
    return model_response(AwsCredentialsOut.of(project.name, config))


@routes.route(
    "GET",
    "/projects/{project}/aws",
    "aws.show_credentials",
    "Show the project's AWS broker settings (never the secret)",
    response=AwsCredentialsOut,
)
async def show_aws_credentials(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    sealed = await runtime.credentials.reveal(project.id, AWS_PROVIDER)
    if not sealed:
        raise NotFound(f"project {project.name!r} has no AWS credentials")
    return model_response(AwsCredentialsOut.of(project.name, AwsProjectConfig.loads(sealed)))


@routes.route(
    "POST",
    "/agents/{agent}/aws-keys",
    "agents.aws_keys.issue",
    "Issue the agent's AWS access key pair (its previous pair is revoked; no other "
    "agent's is touched); the secret is in the response, once",
    response=AwsKeyIssued,
)
async def issue_aws_key(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    agent = await runtime.agents.by_name(request.match_info["agent"])
    issued = await runtime.aws_keys.issue(agent.id)
    await runtime.directory.apply(Change(0, "agent", agent.id))
    body = AwsKeyIssued(
        agent=agent.name,
        access_key_id=issued.key.access_key_id,
        secret_access_key=issued.secret_access_key,
        created_at=iso_ms(issued.key.created_at),
    )
    return model_response(body, status=201)


@routes.route(
    "GET",
    "/agents/{agent}/aws-keys",
    "agents.aws_keys.list",
    "List the agent's AWS access key ids (never a secret)",
    response=AwsKeyOut,
    many=True,
)
async def list_aws_keys(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    agent = await runtime.agents.by_name(request.match_info["agent"])
    keys = await runtime.aws_keys.of_agent(agent.id)
    return model_list_response([AwsKeyOut.of(agent.name, k) for k in keys])


@routes.route(
    "DELETE",
    "/agents/{agent}/aws-keys",
    "agents.aws_keys.revoke",
    "Revoke the agent's AWS access key pair (effective at once)",
    response=AwsKeysRevoked,
)
async def revoke_aws_keys(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    agent = await runtime.agents.by_name(request.match_info["agent"])
    revoked = await runtime.aws_keys.revoke(agent.id)
    await runtime.directory.apply(Change(0, "agent", agent.id))
    return model_response(AwsKeysRevoked(agent=agent.name, revoked=revoked))
