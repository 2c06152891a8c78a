"""``POST /slack/interactions``: Slack's interactivity request URL. A click on an approval
message's Approve / Deny is verified (signature, age, never seen before), the Slack user
mapped to the operator allowed to decide for that project, and decided through the same
code as ``tether approvals approve/deny``. Every interaction is audited, refused or not."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from aiohttp import web

from tether.approvals.decisions import ApprovalDecider, Decider, GrantAsked
from tether.audit.event import AuditEvent
from tether.audit.log import AuditLog
from tether.errors import AuthenticationFailed, BadRequest, Conflict, Forbidden, TetherError
from tether.identity.directory import Directory
from tether.identity.refusal_windows import RefusalWindows
from tether.records.fleet import Role
from tether.slack.actions import DECISIONS, read_button_value
from tether.slack.messages import ApprovalNames, decided_message, ephemeral, regrown_message
from tether.slack.replies import SlackReplies
from tether.slack.signature import MAX_AGE_SECONDS, verify_signature
from tether.store.admin_tokens import AdminTokenStore
from tether.store.approvals import ApprovalRecord, ApprovalStore
from tether.store.slack import SlackStore
from tether.web.bodies import read_limited

__all__ = ["PATH", "SlackInteractions"]

PATH = "/slack/interactions"
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Click:
    team_id: str
    user_id: str
    user_name: str
    approval_id: str
    shown: int | None
    """A group's count as the clicked message showed it (None: a single action's message)."""
    approve: bool
    response_url: str


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 2048:
        raise BadRequest(f"the Slack payload has no usable {name}")
    return value


def _click(body: bytes) -> Click:
    """The one approval button clicked, from Slack's form-encoded ``payload=`` JSON (an
    org-wide app's payload may have no ``team``: the user's ``team_id`` is used)."""
    try:
        fields = parse_qs(body.decode(), strict_parsing=True)
        payload = orjson.loads(fields["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError, orjson.JSONDecodeError):
        raise BadRequest("expected a form-encoded payload= field holding Slack's JSON") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        raise BadRequest("only block_actions interactions (button clicks) are handled here")
    actions = payload.get("actions")
    user, team = payload.get("user"), payload.get("team")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
        raise BadRequest("the Slack payload does not hold exactly one action")
    if not isinstance(user, dict):
        raise BadRequest("the Slack payload names no user")
    team_id = team.get("id") if isinstance(team, dict) else user.get("team_id")
    action_id = actions[0].get("action_id")
    if action_id not in DECISIONS:
        raise BadRequest(f"action {action_id!r} is not a tether approval button")
    response_url = _text(payload.get("response_url"), "response_url")
    if urlsplit(response_url).scheme not in ("https", "http"):
        raise BadRequest("the Slack payload's response_url is not an http(s) URL")
    approval_id, shown = read_button_value(
        _text(actions[0].get("value"), "action value (approval id)")
    )
    return Click(
        team_id=_text(team_id, "team.id"),
        user_id=_text(user.get("id"), "user.id"),
        user_name=str(user.get("username") or user.get("name") or user.get("id"))[:64],
        approval_id=approval_id,
        shown=shown,
        approve=DECISIONS[action_id],
        response_url=response_url,
    )


def _grant(click: Click, record: ApprovalRecord) -> GrantAsked | None:
    """A group's grant is at most what its message showed, however many joined since."""
    return GrantAsked(max_uses=click.shown or 1) if record.grouped else None


class SlackInteractions:
    def __init__(
        self,
        slack: SlackStore,
        approvals: ApprovalStore,
        decider: ApprovalDecider,
        tokens: AdminTokenStore,
        directory: Directory,
        audit: AuditLog,
        replies: SlackReplies,
        public_url: str | None = None,
    ) -> None:
        self._slack = slack
        self._approvals = approvals
        self._decider = decider
        self._tokens = tokens
        self._directory = directory
        self._audit = audit
        self._replies = replies
        self._public_url = public_url
        self._refusals = RefusalWindows()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(PATH, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        recorded = True
        event = AuditEvent(
            actor="slack:unverified",
            source="slack",
            action="slack:interaction",
            resource=PATH,
            result="ok",
        )
        try:
            body = await read_limited(request, MAX_BODY_BYTES)
            await self._verify(request, body)
            click = _click(body)
            event.actor = f"slack:{click.team_id}/{click.user_id}"
            event.resource = f"approval:{click.approval_id}"
            event.attributes = {"approve": click.approve, "slack_user_name": click.user_name}
            try:
                await self._decide(click, event)
            except TetherError as exc:
                self._replies.send(click.response_url, ephemeral(exc.message))
                raise
            return web.Response(status=200)
        except TetherError as exc:
            event.result, event.code, event.reason = "error", exc.code, exc.message
            if isinstance(exc, AuthenticationFailed):
                recorded = self._sampled(request, event, exc.code)
            if exc.status == 403 or exc.status == 404 or exc.status == 409:
                return web.Response(status=200)  # acknowledged; the clicker was told why
            raise
        finally:
            if recorded:
                await self._audit.record(event)

    def _sampled(self, request: web.Request, event: AuditEvent, code: str) -> bool:
        """A request Slack did not sign (or a replay) is recorded once per address per
        window, saying how many it stands for: anyone can send them."""
        window = self._refusals.due(request.remote or "unknown", code)
        if window is None:
            return False
        event.attributes = window
        return True

    async def _verify(self, request: web.Request, body: bytes) -> None:
        secret = await self._slack.signing_secret()
        if secret is None:
            raise TetherError(
                "Slack interactivity is not set up: set the app's signing secret with "
                "`tether slack set-signing-secret`",
                code="slack_not_configured",
            )
        signature = request.headers.get("X-Slack-Signature")
        timestamp = request.headers.get("X-Slack-Request-Timestamp")
        verify_signature(secret, timestamp, signature, body, time.time())
        assert signature is not None and timestamp is not None
        seen_until = (int(timestamp) + MAX_AGE_SECONDS + 60) * 1000
        if not await self._slack.first_sight(
            hashlib.sha256(signature.encode()).hexdigest(), seen_until
        ):
            raise AuthenticationFailed(
                "this Slack request was already handled; a replay is refused",
                code="slack_request_replayed",
            )

    async def _decide(self, click: Click, event: AuditEvent) -> None:
        record = await self._approvals.get(click.approval_id)
        event.project_id, event.agent_id = record.project_id, record.agent_id
        event.session_id = record.session_id
        names = self._names(record)
        operator = await self._operator(click, record, names)
        event.actor = f"admin:{operator}"
        by = Decider(
            f"admin:{operator}",
            source="slack",
            attributes={
                "slack_team_id": click.team_id,
                "slack_user_id": click.user_id,
                "slack_user_name": click.user_name,
            },
        )
        via = f"in Slack by @{click.user_name}"
        if click.approve and record.grouped:
            self._check_shown(click, record, names)
        try:
            decided = (
                await self._decider.approve(record.id, by, f"approved {via}", _grant(click, record))
                if click.approve
                else await self._decider.deny(record.id, by, f"denied {via}")
            )
        except Conflict:
            self._replies.send(
                click.response_url, decided_message(await self._approvals.get(record.id), names)
            )
            raise
        self._replies.send(click.response_url, decided_message(decided, names))

    def _check_shown(self, click: Click, record: ApprovalRecord, names: ApprovalNames) -> None:
        """A group that grew since its message was posted is not granted on that message:
        the approver saw fewer actions than a grant would now allow. The message is
        replaced by the group as it stands, to be approved again."""
        shown = click.shown or 1
        if record.item_count <= shown:
            return
        self._replies.send(click.response_url, regrown_message(record, names, self._public_url))
        raise Conflict(
            f"approval {record.id} now covers {record.item_count} actions under "
            f"{record.scope_prefix}, not the {shown} your message showed; nothing was "
            "decided: the message now shows them all, approve again to grant them",
            code="approval_grew",
        )

    def _names(self, record: ApprovalRecord) -> ApprovalNames:
        project = self._directory.project(record.project_id)
        agent = self._directory.agent(record.agent_id)
        return ApprovalNames(
            project.name if project else record.project_id,
            agent.name if agent else record.agent_id,
        )

    async def _operator(self, click: Click, record: ApprovalRecord, names: ApprovalNames) -> str:
        """The operator this Slack user decides as in the approval's project, still able to."""
        approver = await self._slack.approver(click.team_id, click.user_id, record.project_id)
        if approver is None:
            raise Forbidden(
                f"Slack user {click.user_id} (team {click.team_id}) may not decide approvals "
                f"of project {names.project}; an operator can allow it with `tether slack "
                f"map-user {click.user_id} OPERATOR --team {click.team_id} "
                f"--project {names.project}`",
                code="slack_user_not_mapped",
            )
        token = await self._tokens.by_name(approver.operator)
        if token is None or token.revoked_at is not None or token.role is not Role.ADMIN:
            raise Forbidden(
                f"Slack user {click.user_id} is mapped to operator {approver.operator!r}, "
                "which is not a live admin token (revoked, missing, or read-only); nothing "
                "was decided",
                code="slack_operator_not_allowed",
            )
        return approver.operator
