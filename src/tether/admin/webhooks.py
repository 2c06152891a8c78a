"""Admin: a project's alert webhooks (Slack-compatible, or generic and HMAC-signed)."""

from __future__ import annotations

from aiohttp import web

from tether.admin.appkeys import caller_of, runtime_of
from tether.admin.responses import model_list_response, model_response
from tether.admin.routing import routes
from tether.admin.schemas import DeliveryOut, WebhookAdd, WebhookOut
from tether.clock import iso_ms
from tether.errors import BadRequest
from tether.store.alerts import Delivery
from tether.store.webhooks import Webhook
from tether.web.bodies import read_model


def _out(webhook: Webhook, project_name: str) -> WebhookOut:
    return WebhookOut(
        id=webhook.id,
        project=project_name,
        kind=webhook.kind,
        url=webhook.url,
        signed=webhook.has_secret,
        created_at=iso_ms(webhook.created_at),
        created_by=webhook.created_by,
    )


@routes.route(
    "POST",
    "/projects/{project}/webhooks",
    "webhooks.add",
    "Send this project's alerts to a webhook",
    body=WebhookAdd,
    response=WebhookOut,
    status=201,
)
async def add_webhook(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    payload = await read_model(request, WebhookAdd, runtime.settings.max_body_bytes)
    if payload.kind == "generic" and not payload.secret:
        raise BadRequest("a generic webhook needs a secret (16+ characters) to sign deliveries")
    webhook = await runtime.webhooks.add(
        project.id, payload.kind, payload.url, payload.secret, f"admin:{caller_of(request).name}"
    )
    return model_response(_out(webhook, project.name), status=201)


@routes.route(
    "GET",
    "/projects/{project}/webhooks",
    "webhooks.list",
    "List a project's webhooks (never their secrets)",
    response=WebhookOut,
    many=True,
)
async def list_webhooks(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    hooks = await runtime.webhooks.of_project(project.id)
    return model_list_response([_out(h, project.name) for h in hooks])


@routes.route(
    "DELETE", "/projects/{project}/webhooks/{webhook_id}", "webhooks.delete", "Remove a webhook"
)
async def delete_webhook(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    await runtime.webhooks.delete(project.id, request.match_info["webhook_id"])
    return web.Response(status=204)


DELIVERY_STATES = ("delivered", "retrying", "failed")
MAX_DELIVERIES = 1000


def _delivery_out(delivery: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        webhook_id=delivery.webhook_id,
        event=delivery.event,
        state=delivery.state,
        attempts=delivery.attempts,
        created_at=iso_ms(delivery.created_at),
        next_attempt_at=iso_ms(delivery.next_attempt_at) if delivery.next_attempt_at else None,
        finished_at=iso_ms(delivery.finished_at) if delivery.finished_at else None,
        last_error=delivery.last_error,
    )


@routes.route(
    "GET",
    "/projects/{project}/webhook-deliveries",
    "webhooks.deliveries",
    "A project's alert deliveries, newest first (?state=delivered|retrying|failed: failed "
    "ones were refused for good and are not retried; ?limit=)",
    response=DeliveryOut,
    many=True,
)
async def list_deliveries(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    project = await runtime.projects.by_name(request.match_info["project"])
    state = request.query.get("state")
    if state is not None and state not in DELIVERY_STATES:
        raise BadRequest(f"state must be one of: {', '.join(DELIVERY_STATES)}")
    raw_limit = request.query.get("limit", "100")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_DELIVERIES:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_DELIVERIES}")
    found = await runtime.alert_store.deliveries(project.id, state, int(raw_limit))
    return model_list_response([_delivery_out(d) for d in found])
