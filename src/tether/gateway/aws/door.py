"""``/aws/…``: the AWS credential broker's front door.

Translates only: verifies the agent's SigV4 signature, turns the request into actions
(``operations``), asks the pipeline (``decide_as_one``: every key of a ``DeleteObjects``
is an action, and they are decided as one), renders refusals in the service's error
format, and relays allowed calls re-signed with the project's credential.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from botocore.auth import S3SigV4Auth
from multidict import CIMultiDict

from tether.approvals.waiter import ApprovalWaiter
from tether.errors import PayloadTooLarge, RequestTimeout, TetherError
from tether.gateway.aws.chunked import (
    SIGNED_CHUNKS,
    SIGNED_CHUNKS_TRAILER,
    ChunkChain,
    ChunkError,
    resign_chunks,
)
from tether.gateway.aws.errors import aws_error
from tether.gateway.aws.operations import (
    AwsCall,
    AwsRequestView,
    AwsTarget,
    Unmappable,
    UnreadableRequest,
    map_request,
    map_request_or_why,
    policy_service,
    protocol_of,
)
from tether.gateway.aws.settlement import CallSettlement, refused_as_a_whole
from tether.gateway.aws.sigv4 import (
    HASHED_OFF_LOOP_BYTES,
    SignedRequest,
    SigV4Error,
    check_time,
    parse_signature,
    payload_hash,
    signer,
    verify_signature,
)
from tether.gateway.aws.tags import TagLookupFailed
from tether.gateway.aws.upstream import AwsProjectConfig, AwsUpstream, sign_upstream
from tether.gateway.bedrock.door import BedrockDoor, bedrock_call
from tether.gateway.credentials import refused_without_key
from tether.guards.fingerprints import text_fingerprint
from tether.identity.directory import Directory
from tether.kill.inflight import InflightStreams, StreamHandle
from tether.pipeline import Action, Decision, Deny, Pipeline
from tether.pipeline.long_poll import decide_as_one
from tether.pipeline.stages.identify import AWS_SOURCE
from tether.web.bodies import read_limited
from tether.web.heavy_work import HEAVY_BODY_BYTES
from tether.web.shared_lane import HEAVY_WORK_KEY, heavy_work_of

__all__ = ["PREFIX", "AwsDoor"]

log = logging.getLogger(__name__)

PREFIX = "/aws"
SESSION_HEADER = "X-Tether-Session-Id"
WAIT_HEADER = "X-Tether-Approval-Wait"
MAX_WAIT_SECONDS = 60.0
MAX_SMALL_BODY = 16 * 1024 * 1024
_UNSIGNED_QUERY = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
)
_NOT_FORWARDED = frozenset(
    {
        "host",
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "connection",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "x-tether-session-id",
        "x-tether-approval-wait",
        "content-length",
    }
)
_NOT_RELAYED = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}
)
_DENIED = {
    "s3": "AccessDenied",
    "ec2": "UnauthorizedOperation",
    "json": "AccessDeniedException",
    "cbor": "AccessDeniedException",
    "query": "AccessDenied",
}
_BEDROCK_MODEL_CALL = re.compile(
    r"^/model/(?P<model_id>[^/]+)/(?P<operation>invoke|invoke-with-response-stream|count-tokens|converse|converse-stream)$"
)
_UNAVAILABLE = frozenset(
    {
        "audit_unavailable",
        "store_unavailable",
        "aws_unavailable",
        "heavy_work_busy",
        "credential_unreadable",
    }
)
_BAD_KEY = {"s3": "InvalidAccessKeyId", "ec2": "AuthFailure"}


def _guess_protocol(request: web.Request) -> str:
    """For requests too broken to name their service."""
    if request.headers.get("X-Amz-Target"):
        return "json"
    if "Action=" in request.query_string or request.content_type.endswith("x-www-form-urlencoded"):
        return "query"
    return "s3"


async def _noting(chunks: AsyncIterator[bytes], failures: list[ChunkError]) -> AsyncIterator[bytes]:
    """Remember why a chunked body stopped: the HTTP client reports only that it did."""
    try:
        async for chunk in chunks:
            yield chunk
    except ChunkError as exc:
        failures.append(exc)
        raise


def _tethered(text: str) -> str:
    return text if text.startswith("tether:") else f"tether: {text}"


class _TagsUnread(Exception):
    """A target's tags could not be read: the call is refused (fail closed) as that target."""

    def __init__(self, target: AwsTarget, why: TagLookupFailed) -> None:
        super().__init__(str(why))
        self.target = target


@dataclass(frozen=True, slots=True)
class _EarlyRefusal:
    """How a call refused before its decision is recorded and answered."""

    code: str
    reason: str
    status: int
    aws_code: str


def _refusal_status(code: str) -> int:
    """503 when tether could not check (retry later), else 403."""
    return 503 if code in _UNAVAILABLE else 403


def _early_refusal(exc: Exception, protocol: str) -> _EarlyRefusal:
    """Fail closed: whatever stopped tether from deciding the call refuses it."""
    if isinstance(exc, UnreadableRequest):
        code = "MalformedXML" if protocol == "s3" else "SerializationException"
        return _EarlyRefusal("unreadable_request", str(exc), 400, code)
    if isinstance(exc, _TagsUnread):
        return _EarlyRefusal("tag_lookup_failed", f"{exc}; denied", 403, _DENIED[protocol])
    if isinstance(exc, TetherError):
        status = _refusal_status(exc.code)
        aws_code = "ServiceUnavailable" if status == 503 else _DENIED[protocol]
        return _EarlyRefusal(exc.code, exc.message, status, aws_code)
    log.error("the AWS door failed before deciding a call", exc_info=exc)
    reason = f"tether could not read the call ({type(exc).__name__}); denied"
    return _EarlyRefusal("internal_error", reason, 500, "InternalError")


class AwsDoor:
    def __init__(
        self,
        pipeline: Pipeline,
        waiter: ApprovalWaiter,
        directory: Directory,
        upstream: AwsUpstream,
        inflight: InflightStreams,
        bedrock: BedrockDoor | None = None,
    ) -> None:
        """``bedrock``: where ``bedrock-runtime`` model calls go, so they are metered,
        budgeted and guarded as model calls (not only policy-checked)."""
        self._bedrock = bedrock
        self._pipeline = pipeline
        self._waiter = waiter
        self._directory = directory
        self._upstream = upstream
        self._inflight = inflight

    def add_routes(self, app: web.Application) -> None:
        heavy_work_of(app, ("tether.gateway.aws.operations",))
        app.router.add_route("*", PREFIX, self.handle)
        app.router.add_route("*", PREFIX + "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw_path, _, raw_query = request.raw_path.partition("?")
        try:
            signed = parse_signature(request.headers, raw_query)
        except SigV4Error as exc:
            await refused_without_key(request, AWS_SOURCE, exc.code)
            return aws_error(_guess_protocol(request), exc.code, exc.message)
        path = raw_path[len(PREFIX) :] or "/"
        protocol = protocol_of(signed.service, request.headers, path)
        try:
            return await self._handle(request, signed, protocol, raw_path, raw_query, path)
        except SigV4Error as exc:
            await refused_without_key(request, AWS_SOURCE, exc.code)
            return aws_error(protocol, exc.code, exc.message)
        except UnreadableRequest as exc:
            code = "MalformedXML" if protocol == "s3" else "SerializationException"
            return aws_error(protocol, code, str(exc), 400)
        except RequestTimeout as exc:
            return aws_error(protocol, "RequestTimeout", _tethered(exc.message), 400)
        except TetherError as exc:
            early = _early_refusal(exc, protocol)
            return aws_error(protocol, early.aws_code, _tethered(early.reason), early.status)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("the AWS door failed on %s %s", request.method, request.path)
            return aws_error(
                protocol, "InternalError", "tether: the call could not be handled; denied", 500
            )

    @staticmethod
    async def _map(request: web.Request, view: AwsRequestView) -> AwsCall:
        """On the loop when the body is small; a large one (JSON, XML or CBOR up to
        ``MAX_SMALL_BODY``: seconds of parsing) in the app's heavy-work lane."""
        if view.body is None or len(view.body) <= HEAVY_BODY_BYTES:
            return map_request(view)
        portable = replace(view, headers=CIMultiDict(view.headers))
        lane = request.app[HEAVY_WORK_KEY]
        read = await lane.run(map_request_or_why, portable, size=len(view.body))
        if isinstance(read, Unmappable):
            raise UnreadableRequest(read.message)
        return read

    async def _read_small(self, request: web.Request) -> bytes:
        """The whole body (a read of the stream returns what has arrived so far: a large
        body in several TCP segments was hashed short and refused as a bad signature)."""
        try:
            return await read_limited(request, MAX_SMALL_BODY)
        except PayloadTooLarge:
            raise UnreadableRequest(f"the body is larger than {MAX_SMALL_BODY} bytes") from None

    async def _handle(
        self,
        request: web.Request,
        signed: SignedRequest,
        protocol: str,
        raw_path: str,
        raw_query: str,
        path: str,
    ) -> web.StreamResponse:
        started = time.perf_counter()
        query = [(k, v) for k, v in request.query.items()]
        session_id = request.headers.get(SESSION_HEADER) or None
        key = await self._directory.aws_key(signed.access_key_id)
        if key is None or key.revoked_at is not None:
            return await self._refuse_key(signed, protocol, session_id)
        check_time(signed)
        # Read only for a known key and a fresh signature: anyone can send 16 MB bodies.
        small = signed.service != "s3" or (request.method == "POST" and "delete" in request.query)
        body = await self._read_small(request) if small else None
        verify_signature(
            signed,
            self._directory.aws_secret(key),
            request.method,
            raw_path,
            raw_query,
            request.headers,
            await payload_hash(signed, request.headers, body),
        )
        self._directory.note_address(key.id, request.remote)
        agent = self._directory.agent(key.agent_id)
        project = self._directory.project(agent.project_id) if agent else None
        if agent is None or project is None:
            return await self._refuse_key(signed, protocol, session_id)
        model_call = _BEDROCK_MODEL_CALL.match(path) if signed.service == "bedrock" else None
        if model_call is not None and self._bedrock is not None and body is not None:
            return await self._bedrock.relay(
                request,
                bedrock_call(
                    AWS_SOURCE,
                    unquote(model_call["model_id"]),
                    model_call["operation"],
                    body,
                    credential=signed.access_key_id,
                    join_latest_session=True,
                    tags={"region": signed.region},
                ),
            )
        call: AwsCall | None = None
        try:
            config = await self._upstream.config(project.id, project.name)
            view = AwsRequestView(
                method=request.method,
                path=path,
                host=request.headers.get("Host", ""),
                query=query,
                headers=request.headers,
                body=body,
                service=signed.service,
                region=signed.region,
                account=await self._upstream.account(project.id, config),
            )
            call = await self._map(request, view)
            actions = await self._actions(call, signed, session_id, project.id, config, raw_query)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:
            early = _early_refusal(exc, protocol)
            what = self._refused_action(request, signed, session_id, call, exc, early.code)
            await self._pipeline.refuse(what, Deny(early.code, early.reason))
            return aws_error(protocol, early.aws_code, _tethered(early.reason), early.status)
        decisions = await decide_as_one(
            self._pipeline, self._waiter, actions, self._wait_seconds(request)
        )
        settlement = CallSettlement(self._pipeline, decisions, started)
        refused = next((d for d in decisions if not d.allowed and not d.pending), None)
        pending = [d for d in decisions if d.pending]
        if refused is not None or pending:
            answer = (
                self._denied(protocol, refused)
                if refused is not None
                else aws_error(
                    protocol,
                    _DENIED[protocol],
                    _tethered(" | ".join(d.reason for d in pending)),
                    403,
                )
            )
            await settlement.not_sent(answer.status, refused_as_a_whole(refused or pending[0]))
            return answer
        try:
            return await self._forward(
                request, signed, call, config, agent.name, project.id, body, raw_query, settlement
            )
        except BaseException as exc:
            await self._settle_unsent(settlement, exc)
            unsent = not settlement.sent and isinstance(exc, Exception)
            if unsent and not isinstance(exc, (TetherError, ConnectionResetError)):
                log.exception("the AWS door could not send %s %s", request.method, request.path)
                return aws_error(
                    protocol,
                    "InternalError",
                    f"tether: the call was not sent to AWS ({type(exc).__name__}); "
                    "nothing was done",
                    502,
                )
            raise

    @staticmethod
    async def _settle_unsent(settlement: CallSettlement, exc: BaseException) -> None:
        """``_forward`` ended by ``exc`` before it settled the call's decisions."""
        if settlement.settled:
            return
        if isinstance(exc, asyncio.CancelledError):
            if settlement.sent:
                await settlement.abandoned("the client left while AWS answered")
            else:
                await settlement.not_sent(499, "the client left before the call was sent")
            return
        if settlement.sent:
            failed = f"the call failed on its way ({type(exc).__name__})"
            await settlement.settle(502, failed, reached=True)
            return
        if isinstance(exc, TetherError):
            await settlement.not_sent(
                _refusal_status(exc.code), f"not sent to AWS: {exc.message} ({exc.code})"
            )
            return
        await settlement.not_sent(502, f"not sent to AWS: tether failed ({type(exc).__name__})")

    def _refused_action(
        self,
        request: web.Request,
        signed: SignedRequest,
        session_id: str | None,
        call: AwsCall | None,
        exc: Exception,
        code: str,
    ) -> Action:
        """The action a call refused before its decision is recorded as: the target whose
        tags could not be read, else the operation as far as it was read."""
        service = policy_service(signed.service)
        attributes: dict[str, Any] = {
            "service": service,
            "region": signed.region,
            "access_key_id": signed.access_key_id,
            "request": f"{request.method} {request.path}",
        }
        action, resource = f"{service}:Call", f"arn:aws:{service}:::*"
        if call is not None:
            attributes["operation"] = call.operation
            action = f"{service}:{call.operation}"
        if isinstance(exc, _TagsUnread):
            action, resource = exc.target.action, exc.target.resource
        return Action(
            source=AWS_SOURCE,
            credential=signed.access_key_id,
            action=action,
            resource=resource,
            session_id=session_id,
            attributes={**attributes, "refused": code},
            join_latest_session=True,
        )

    @staticmethod
    def _wait_seconds(request: web.Request) -> float:
        try:
            wait = float(request.headers.get(WAIT_HEADER, "0"))
        except ValueError:
            return 0.0
        if math.isnan(wait):
            return 0.0
        return min(max(wait, 0.0), MAX_WAIT_SECONDS)

    async def _refuse_key(
        self, signed: SignedRequest, protocol: str, session_id: str | None
    ) -> web.Response:
        """Unknown or revoked key: the identify stage refuses it, on the record."""
        service = policy_service(signed.service)
        decision = await self._pipeline.decide(
            Action(
                source=AWS_SOURCE,
                credential=signed.access_key_id,
                action=f"{service}:Call",
                resource=f"arn:aws:{service}:::*",
                session_id=session_id,
                attributes={"access_key_id": signed.access_key_id},
            )
        )
        code = _BAD_KEY.get(protocol, "InvalidClientTokenId")
        return aws_error(protocol, code, _tethered(decision.reason), 403)

    async def _actions(
        self,
        call: AwsCall,
        signed: SignedRequest,
        session_id: str | None,
        project_id: str,
        config: AwsProjectConfig,
        raw_query: str,
    ) -> list[Action]:
        service = policy_service(signed.service)
        base: dict[str, Any] = {
            "service": service,
            "operation": call.operation,
            "region": signed.region,
            "access_key_id": signed.access_key_id,
        }
        if not call.mapped:
            return [
                Action(
                    source=AWS_SOURCE,
                    credential=signed.access_key_id,
                    action=f"{service}:{call.operation}",
                    resource=f"aws-operation:{service}:{call.operation}",
                    session_id=session_id,
                    attributes=base,
                    unmapped=call.why_unmapped,
                    join_latest_session=True,
                )
            ]
        clients = self._upstream.client_factory(project_id, config, signed.region)
        query = "&".join(
            sorted(p for p in raw_query.split("&") if p and not p.startswith(_UNSIGNED_QUERY))
        )
        actions = []
        for target in call.targets:
            try:
                tags = (
                    await self._upstream.tags.tags(
                        project_id, clients, target.tags_from, signed.region
                    )
                    if target.tags_from is not None
                    else {}
                )
            except TagLookupFailed as exc:
                raise _TagsUnread(target, exc) from None
            actions.append(
                Action(
                    source=AWS_SOURCE,
                    credential=signed.access_key_id,
                    action=target.action,
                    resource=target.resource,
                    session_id=session_id,
                    attributes=base,
                    tags=tags,
                    fingerprint=text_fingerprint(f"{call.operation} {target.resource} {query}"),
                    destructive=target.destructive,
                    join_latest_session=True,
                )
            )
        return actions

    @staticmethod
    def _denied(protocol: str, decision: Decision) -> web.Response:
        reason = _tethered(f"{decision.reason} ({decision.code})")
        if decision.code in ("invalid_key", "revoked_key", "expired_key"):
            return aws_error(protocol, _BAD_KEY.get(protocol, "InvalidClientTokenId"), reason, 403)
        if decision.code in ("audit_unavailable", "store_unavailable"):
            return aws_error(protocol, "ServiceUnavailable", reason, 503)
        return aws_error(protocol, _DENIED[protocol], reason, 403)

    async def _forward(
        self,
        request: web.Request,
        signed: SignedRequest,
        call: AwsCall,
        config: AwsProjectConfig,
        agent_name: str,
        project_id: str,
        body: bytes | None,
        raw_query: str,
        settlement: CallSettlement,
    ) -> web.StreamResponse:
        """Settles the call's decisions on every way out once it is sent; before that, an
        exception leaves them to the caller (``_settle_unsent``)."""
        credentials = await self._upstream.credentials(project_id, config, agent_name)
        upstream_path = request.raw_path.partition("?")[0][len(PREFIX) :] or "/"
        if signed.service == "s3" and call.bucket and call.virtual_host:
            upstream_path = f"/{call.bucket}{upstream_path}"  # virtual-hosted → path-style
        query = "&".join(p for p in raw_query.split("&") if p and not p.startswith(_UNSIGNED_QUERY))
        url = config.endpoint(signed.service, signed.region) + upstream_path
        url += f"?{query}" if query else ""
        headers = [
            (name, value)
            for name, value in request.headers.items()
            if name.lower() not in _NOT_FORWARDED
        ]
        content_sha = request.headers.get("X-Amz-Content-SHA256")
        if signed.presigned and signed.service == "s3":
            content_sha = "UNSIGNED-PAYLOAD"
            headers.append(("X-Amz-Content-SHA256", content_sha))
        if content_sha == SIGNED_CHUNKS_TRAILER:
            unsupported = (
                "signed chunks with trailers are not supported; "
                "use STREAMING-UNSIGNED-PAYLOAD-TRAILER or STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
            )
            await settlement.not_sent(501, f"not sent to AWS: {unsupported}")
            return aws_error("s3", "NotImplemented", f"tether: {unsupported}", 501)
        length = len(body) if body is not None else request.content_length
        if length is not None:
            headers.append(("Content-Length", str(length)))
        sign = functools.partial(
            sign_upstream,
            request.method,
            url,
            headers,
            credentials,
            signed.service,
            signed.region,
            content_sha,
            body,
        )
        # botocore hashes the body to sign it; a large one is hashed on a thread.
        large = body is not None and len(body) >= HASHED_OFF_LOOP_BYTES
        signed_headers, seed = await asyncio.to_thread(sign) if large else sign()
        payload: bytes | AsyncIterator[bytes] | None = body
        chunk_failures: list[ChunkError] = []
        if body is None and (length or request.body_exists):
            if content_sha == SIGNED_CHUNKS:
                agent_key = await self._directory.aws_key(signed.access_key_id)
                assert agent_key is not None
                agent_chain = ChunkChain(
                    signer(signed, self._directory.aws_secret(agent_key)),
                    signed.timestamp,
                    signed.signature,
                )
                upstream_chain = ChunkChain(
                    S3SigV4Auth(credentials, signed.service, signed.region),
                    signed_headers["X-Amz-Date"],
                    seed,
                )
                payload = _noting(
                    resign_chunks(request.content, agent_chain, upstream_chain), chunk_failures
                )
            else:
                payload = request.content.iter_chunked(256 * 1024)
        outcome_status = 502
        settlement.sent = True
        try:
            upstream = await self._upstream.send(request.method, url, signed_headers, payload)
        except (aiohttp.ClientError, TimeoutError, ChunkError) as exc:
            if chunk_failures:
                await settlement.settle(403, str(chunk_failures[0]), reached=True)
                return aws_error("s3", "SignatureDoesNotMatch", f"tether: {chunk_failures[0]}", 403)
            if isinstance(exc, aiohttp.ClientConnectorError):
                await settlement.not_sent(502, f"AWS could not be reached: {exc}")
            else:
                await settlement.settle(502, f"upstream unreachable: {exc}", reached=False)
            return aws_error(
                call.protocol,
                "ServiceUnavailable",
                f"tether: AWS could not be reached ({type(exc).__name__})",
                503,
            )
        first = settlement.decisions[0]
        assert first.context is not None and first.context.identity is not None
        handle = StreamHandle(
            agent_id=first.context.identity.agent.id,
            project_id=first.context.identity.project.id,
            session_id=first.session_id,
            cut=lambda _verdict: upstream.close(),
        )
        token = self._inflight.register(handle)
        if handle.cut_by is not None:
            # Stopped while AWS answered: nothing relayed yet, so a refusal, not a cut body.
            self._inflight.unregister(token)
            upstream.release()
            await settlement.settle(423, handle.cut_by.reason, reached=True)
            reason = _tethered(handle.cut_by.reason)
            return aws_error(call.protocol, _DENIED[call.protocol], reason, 423)
        try:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in _NOT_RELAYED:
                    response.headers.add(name, value)
            if upstream.content_length is not None:
                response.content_length = upstream.content_length
            await response.prepare(request)
            if request.method != "HEAD":
                async for chunk in upstream.content.iter_chunked(256 * 1024):
                    await response.write(chunk)
            await response.write_eof()
            outcome_status = upstream.status
        except (aiohttp.ClientError, TimeoutError):
            if handle.cut_by is None:
                raise
            outcome_status = 423
            # The client was promised the whole body: closing the connection tells it the
            # transfer ended now, instead of leaving it to wait out its read timeout.
            response.force_close()
        finally:
            self._inflight.unregister(token)
            upstream.release()
            await settlement.settle(outcome_status, "", reached=True)
        return response
