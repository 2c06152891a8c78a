"""Admin: Slack interactivity — the app's signing secret (write-only) and which Slack
users decide a project's approvals as which operator."""

from __future__ import annotations

from aiohttp import web

from tether.admin.appkeys import caller_of, runtime_of
from tether.admin.responses import model_list_response, model_response
from tether.admin.routing import routes
from tether.admin.slack_schemas import (
    SigningSecretOut,
    SigningSecretSet,
    SlackUserMap,
    SlackUserOut,
)
from tether.clock import iso_ms
from tether.errors import Conflict, NotFound
from tether.records.fleet import Role
from tether.store.slack import SigningSecretInfo, SlackApprover
from tether.web.bodies import read_model


def _secret_out(info: SigningSecretInfo | None) -> SigningSecretOut:
    if info is None:
        return SigningSecretOut(set=False, updated_at=None, updated_by=None)
    return SigningSecretOut(
        set=True, updated_at=iso_ms(info.updated_at), updated_by=info.updated_by
    )


def _user_out(approver: SlackApprover, project: str) -> SlackUserOut:
    return SlackUserOut(
        id=approver.id,
        project=project,
        team_id=approver.team_id,
        user_id=approver.user_id,
        operator=approver.operator,
        created_at=iso_ms(approver.created_at),
        created_by=approver.created_by,
    )


@routes.route(
    "PUT",
    "/slack/signing-secret",
    "slack.set_signing_secret",
    "Store the Slack app's signing secret (sealed; it verifies Approve / Deny clicks and is "
    "never shown again)",
    body=SigningSecretSet,
    response=SigningSecretOut,
)
async def set_signing_secret(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    payload = await read_model(request, SigningSecretSet, runtime.settings.max_body_bytes)
    info = await runtime.slack.set_signing_secret(
        payload.secret, f"admin:{caller_of(request).name}"
    )
    return model_response(_secret_out(info))


@routes.route(
    "GET",
    "/slack/signing-secret",
    "slack.signing_secret",
    "Whether a Slack signing secret is stored, when and by whom (never the secret)",
    response=SigningSecretOut,
)
async def signing_secret(request: web.Request) -> web.Response:
    return model_response(_secret_out(await runtime_of(request).slack.signing_secret_info()))


@routes.route(
    "POST",
    "/projects/{project}/slack-users",
    "slack.map_user",
    "Let a Slack user decide this project's approvals from Slack, as an operator (an admin "
    "token's name)",
    body=SlackUserMap,
    response=SlackUserOut,
    status=201,
)
async def map_user(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    payload = await read_model(request, SlackUserMap, runtime.settings.max_body_bytes)
    token = await runtime.admin_tokens.by_name(payload.operator)
    if token is None:
        raise NotFound(
            f"operator {payload.operator!r} is not a live admin token (`tether tokens list`); "
            "a Slack user decides as an admin token with the admin role"
        )
    if token.revoked_at is not None or token.role is not Role.ADMIN:
        raise Conflict(
            f"operator {payload.operator!r} is not a live admin token with the admin role "
            "(revoked, or read-only); a Slack user decides as one"
        )
    approver = await runtime.slack.map_user(
        payload.team_id,
        payload.user_id,
        project.id,
        payload.operator,
        f"admin:{caller_of(request).name}",
    )
    return model_response(_user_out(approver, project.name), status=201)


@routes.route(
    "GET",
    "/projects/{project}/slack-users",
    "slack.users",
    "The Slack users who may decide this project's approvals, and as whom",
    response=SlackUserOut,
    many=True,
)
async def users(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    found = await runtime.slack.approvers(project.id)
    return model_list_response([_user_out(a, project.name) for a in found])


@routes.route(
    "DELETE",
    "/projects/{project}/slack-users/{team_id}/{user_id}",
    "slack.unmap_user",
    "Stop a Slack user deciding this project's approvals",
)
async def unmap_user(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    await runtime.slack.unmap_user(
        request.match_info["team_id"], request.match_info["user_id"], project.id
    )
    return web.Response(status=204)
