"""Admin: reading the audit trail (agent, session, project, time window)."""

from __future__ import annotations

import json
from datetime import datetime

import orjson
from aiohttp import web

from tether.admin.appkeys import GATE_NOTE, GateNote, runtime_of
from tether.admin.audit_schemas import (
    AnchorOut,
    LatestAnchorOut,
    PruneIn,
    PruneOut,
    PublicKeyOut,
)
from tether.admin.filters import scope_from_query
from tether.admin.responses import model_list_response, model_response
from tether.admin.routing import routes
from tether.admin.schemas import AuditEventOut, ChainBreakOut, ChainReportOut, ResultCountOut
from tether.audit.anchors import key_id, public_key_text, sign_anchor
from tether.audit.chain import ChainHead
from tether.audit.trail_events import AUDIT_EXPORTED, AUDIT_VERIFIED
from tether.clock import iso_ms, now_ms
from tether.errors import BadRequest
from tether.web.bodies import read_model
from tether.web.headers import CHAIN_BASE_HEADER, CHAIN_HEAD_HEADER, NEXT_PAGE_HEADER

MAX_LIMIT = 10_000
EXPORT_PAGE = 5000
EXPORT_DESTS = ("directory", "s3")
"""Where `tether audit export --dest` writes: an export to them is `audit:export`."""
STORED = orjson.OPT_NON_STR_KEYS  # column names arrive as SQLAlchemy's str subclass
DAY_MS = 24 * 3600 * 1000
MAX_BUCKETS = 1440
"""A day by the minute."""


def _time_ms(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"{name}={value!r} is not an ISO 8601 time (e.g. 2026-11-25T14:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise BadRequest(f"{name}={value!r} has no time zone; add Z or an offset")
    return int(moment.timestamp() * 1000)


def _seq(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise BadRequest(f"{name} must be an event number (0 or more), not {value!r}")
    return int(value)


def _before(value: str | None) -> tuple[int, int] | None:
    """``before=TS:SEQ`` from a previous newest-first page's ``X-Tether-Next-Page``."""
    if value is None:
        return None
    ts, _, seq = value.partition(":")
    if not ts.isdigit() or not seq.isdigit():
        raise BadRequest(f"before={value!r} is not a cursor from a previous page (TS:SEQ)")
    return int(ts), int(seq)


def _limit(value: str | None) -> int:
    if value is None:
        return 500
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)


@routes.route(
    "GET",
    "/audit",
    "audit.query",
    "Audit events in chain order (?order=newest: newest time first), filtered by agent, "
    "session, project, since/until, action (prefix), result; a cut list names its next page "
    "in X-Tether-Next-Page (after_seq=N, or before=TS:SEQ when newest first)",
    response=AuditEventOut,
    many=True,
)
async def query_audit(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    query = request.query
    scope = await scope_from_query(runtime, query)
    limit = _limit(query.get("limit"))
    order = query.get("order", "oldest")
    if order not in ("oldest", "newest"):
        raise BadRequest(f"order={order!r}: use oldest or newest")
    rows = await runtime.audit_store.query(
        agent_id=scope.agent_id,
        project_id=scope.project_id,
        session_id=query.get("session"),
        since_ms=_time_ms("since", query.get("since")),
        until_ms=_time_ms("until", query.get("until")),
        action_prefix=query.get("action"),
        result=query.get("result"),
        after_seq=_seq("after_seq", query.get("after_seq")),
        before=_before(query.get("before")),
        newest_first=order == "newest",
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    events = [
        AuditEventOut(
            id=row["id"],
            ts=iso_ms(row["ts"]),
            project_id=row["project_id"],
            agent=row["agent_name"],
            session_id=row["session_id"],
            actor=row["actor"],
            source=row["source"],
            action=row["action"],
            resource=row["resource"],
            result=row["result"],
            code=row["code"],
            reason=row["reason"],
            attributes=json.loads(row["attributes"]),
            seq=row["seq"],
            hash=row["hash"],
        )
        for row in rows
    ]
    response = model_list_response(events)
    if more:
        last = rows[-1]
        cursor = (
            f"before={last['ts']}:{last['seq']}"
            if order == "newest"
            else f"after_seq={last['seq']}"
        )
        response.headers[NEXT_PAGE_HEADER] = cursor
    return response


def _bucket_ms(value: str | None) -> int:
    if value is None:
        return 3600 * 1000
    if not value.isdigit() or not 60 <= int(value) <= 86400:
        raise BadRequest(f"bucket={value!r}: a whole number of seconds from 60 to 86400")
    return int(value) * 1000


@routes.route(
    "GET",
    "/audit/results",
    "audit.results",
    "Audit events counted per time bucket and result (?bucket= seconds, 3600 by default; "
    "since/until, the last 24 h by default; project, agent); empty buckets are left out. "
    "Every event of the window is read: keep the window to what you need",
    response=ResultCountOut,
    many=True,
)
async def count_results(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    query = request.query
    scope = await scope_from_query(runtime, query)
    bucket_ms = _bucket_ms(query.get("bucket"))
    until = _time_ms("until", query.get("until"))
    until = now_ms() if until is None else until
    since = _time_ms("since", query.get("since"))
    since = until - DAY_MS if since is None else since
    if since >= until:
        raise BadRequest("since must be before until")
    if (until - since) // bucket_ms > MAX_BUCKETS:
        raise BadRequest(f"that is more than {MAX_BUCKETS} buckets: use a longer bucket")
    counts = await runtime.audit_store.count_by_result(
        since_ms=since,
        until_ms=until,
        bucket_ms=bucket_ms,
        project_id=scope.project_id,
        agent_id=scope.agent_id,
    )
    return model_list_response(
        [
            ResultCountOut(start=iso_ms(c.start_ms) or "", result=c.result, count=c.count)
            for c in counts
        ]
    )


@routes.route(
    "GET",
    "/audit/verify",
    "audit.verify",
    "Walk the audit hash chain; report the first changed, missing or re-ordered event",
    response=ChainReportOut,
)
async def verify_audit(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    report = await runtime.audit_store.verify()
    broken = report.first_break
    request[GATE_NOTE] = GateNote(
        AUDIT_VERIFIED,
        "ok" if report.intact else "error",
        f"{report.checked} events checked up to #{report.head.seq}"
        + (f"; broken at #{broken.seq}: {broken.problem}" if broken else ""),
        {"checked": report.checked, "head_seq": report.head.seq},
    )
    return model_response(
        ChainReportOut(
            intact=report.intact,
            checked=report.checked,
            head_seq=report.head.seq,
            head_hash=report.head.hash,
            first_break=ChainBreakOut(
                seq=broken.seq, event_id=broken.event_id, problem=broken.problem
            )
            if broken
            else None,
        )
    )


@routes.route(
    "GET",
    "/audit/export",
    "audit.export",
    "The audit trail as stored, one JSON event per line in chain order (for your own "
    "storage; verifiable offline with `tether audit verify --file`). ?dest=directory|s3: "
    "an export into the operator's storage (`tether audit export --dest`), recorded as "
    "audit:export for the readiness check",
    status=200,
    media_type="application/x-ndjson",
)
async def export_audit(request: web.Request) -> web.StreamResponse:
    runtime = runtime_of(request)
    head = await runtime.audit_store.chain_head()
    base = await runtime.audit_store.chain_base()
    after = max(_seq("after_seq", request.query.get("after_seq")) or 0, base.seq)
    dest = request.query.get("dest")
    if dest is not None and dest not in EXPORT_DESTS:
        raise BadRequest(f"dest={dest[:40]!r}: use one of {', '.join(EXPORT_DESTS)}")
    exported_from = after
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/x-ndjson",
            CHAIN_HEAD_HEADER: f"{head.seq}:{head.hash}",
            CHAIN_BASE_HEADER: f"{base.seq}:{base.hash}",
        }
    )
    await response.prepare(request)
    while after < head.seq:
        rows = await runtime.audit_store.query(after_seq=after, limit=EXPORT_PAGE)
        rows = [row for row in rows if row["seq"] <= head.seq]
        if not rows:
            break
        await response.write(b"".join(orjson.dumps(row, option=STORED) + b"\n" for row in rows))
        after = rows[-1]["seq"]
    await response.write_eof()
    if dest is not None:
        request[GATE_NOTE] = GateNote(
            AUDIT_EXPORTED,
            reason=f"{after - exported_from} events exported to a {dest}, through #{after}",
            attributes={"dest": dest, "events": after - exported_from, "last_seq": after},
        )
    return response


@routes.route(
    "GET",
    "/audit/public-key",
    "audit.public_key",
    "The Ed25519 public key that signs audit anchors (created on first use)",
    response=PublicKeyOut,
)
async def audit_public_key(request: web.Request) -> web.Response:
    keys = runtime_of(request).audit_keys
    assert keys is not None
    public = public_key_text((await keys.key()).public_key())
    return model_response(PublicKeyOut(public_key=public, key_id=key_id(public)))


@routes.route(
    "GET",
    "/audit/anchors/latest",
    "audit.latest_anchor",
    "The newest signed anchor at the anchor destination: `tether audit verify` checks the "
    "trail against it, so a cut tail is found",
    response=LatestAnchorOut,
)
async def latest_anchor(request: web.Request) -> web.Response:
    keeper = runtime_of(request).anchors
    anchor = await keeper.latest() if keeper is not None else None
    return model_response(
        LatestAnchorOut(
            kept=keeper is not None,
            anchor=AnchorOut.model_validate(orjson.loads(anchor.to_json())) if anchor else None,
        )
    )


@routes.route(
    "POST",
    "/audit/prune",
    "audit.prune",
    "Remove events before a time, once a verified export holds them; the last removed "
    "event is signed as an anchor, so the trail stays verifiable from there",
    body=PruneIn,
    response=PruneOut,
)
async def prune_audit(request: web.Request) -> web.Response:
    runtime = runtime_of(request)
    wanted = await read_model(request, PruneIn, runtime.settings.max_body_bytes)
    before = int(wanted.before.timestamp() * 1000)
    assert runtime.audit_keys is not None
    base = await runtime.audit_store.prune(before, ChainHead(wanted.export_seq, wanted.export_hash))
    if base is None:
        return model_response(PruneOut(pruned_through=0, base_hash="", anchor=None))
    anchor = None
    if runtime.anchors is not None:
        anchor = await runtime.anchors.anchor_now(base, "prune")
    if anchor is None:
        anchor = sign_anchor(await runtime.audit_keys.key(), base, now_ms(), "prune")
    return model_response(
        PruneOut(
            pruned_through=base.seq,
            base_hash=base.hash,
            anchor=AnchorOut.model_validate(orjson.loads(anchor.to_json())),
        )
    )
