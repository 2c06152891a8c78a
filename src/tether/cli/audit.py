"""``tether audit``."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import typer

from tether.audit.anchors import Anchor
from tether.audit.chain import GENESIS, ChainHead, ChainReport, ChainWalker, walk_export
from tether.cli.audit_anchors import check_against_anchors, load_anchors, parsed
from tether.cli.audit_archive import (
    archive_events,
    archived_lines,
    destination,
    read_cursor,
)
from tether.cli.audit_storage import ExportWriter, export_to, read_export
from tether.cli.audit_timeline import print_timeline
from tether.cli.client import AdminClient, CliError
from tether.cli.context import AgentFilter, JsonOption, ProjectFilter, client, reports_errors
from tether.cli.output import print_json, print_more, print_records
from tether.cli.progress import progress_bar
from tether.cli.times import SinceOption, UntilOption, as_instant
from tether.web.headers import CHAIN_BASE_HEADER, CHAIN_HEAD_HEADER

app = typer.Typer(help="The audit trail.", no_args_is_help=True)
REPLAY_PAGE = 1000
ExportFileOption = typer.Option(
    None, "--file", "-f", help="Check an export (a file or s3://BUCKET/KEY) offline."
)
ExportOutOption = typer.Option(
    None, "--out", "-o", help="Where to write (JSON lines): a file, or s3://BUCKET/KEY."
)
DestOption = typer.Option(
    None,
    "--dest",
    help="Incremental export: a directory or s3://BUCKET/PREFIX; only events after the "
    "cursor kept there are added, gzipped by date.",
)
TimeoutOption = typer.Option(
    30.0, "--timeout", help="Seconds to wait for each read from tether (not the whole run)."
)
COLUMNS = ["seq", "ts", "actor", "session_id", "action", "resource", "result", "code", "reason"]


@app.command("query")
@reports_errors
def query(
    ctx: typer.Context,
    agent: str | None = AgentFilter,
    session: str | None = typer.Option(None, "--session", "-s", help="Only this session's events."),
    project: str | None = ProjectFilter,
    since: str | None = SinceOption,
    until: str | None = UntilOption,
    action: str | None = typer.Option(None, "--action", help="Action prefix, e.g. admin:"),
    limit: int = typer.Option(500, "--limit", help="At most this many (1 to 10000)."),
    after_seq: int | None = typer.Option(
        None, "--after-seq", help="Only events after this number (the next page)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Events in the order they were written, filtered by agent, session, project and time;
    says so when more are available."""
    params = {
        "agent": agent,
        "session": session,
        "project": project,
        "since": as_instant("--since", since),
        "until": as_instant("--until", until),
        "action": action,
        "limit": str(limit),
        "after_seq": None if after_seq is None else str(after_seq),
    }
    events, next_page = client(ctx).call_page("GET", "/audit", params=params)
    print_records(events, COLUMNS, as_json, "audit")
    print_more(next_page, "--after-seq")


@app.command("verify")
@reports_errors
def verify(
    ctx: typer.Context,
    file: str | None = ExportFileOption,
    expect: str | None = typer.Option(
        None,
        "--expect",
        help="SEQ:HASH noted from an export: the trail must still hold it (or, for a "
        "partial --file, the export must continue from it).",
    ),
    from_seq: int | None = typer.Option(
        None,
        "--from-seq",
        min=1,
        help="With --file: the export starts at this event on purpose (unanchored).",
    ),
    anchors: str | None = typer.Option(
        None,
        "--anchors",
        help="Also check against every signed anchor at this destination (a directory or "
        "s3://BUCKET/PREFIX): catches a trail rewritten and re-hashed wholesale.",
    ),
    archive: str | None = typer.Option(
        None, "--archive", help="With --anchors: check an incremental export (--dest) instead."
    ),
    public_key: str | None = typer.Option(
        None, "--public-key", help="The anchors' public key (default: ask tether)."
    ),
    timeout: float = TimeoutOption,
    as_json: bool = JsonOption,
) -> None:
    """Walk the hash chain; exit 1 at the first changed, missing or re-ordered event. The
    live trail is streamed and checked here, so its length is no limit; an export must
    start at #1 unless --expect or --from-seq says where it begins."""
    if anchors is not None:
        _verify_anchored(ctx, anchors, archive, public_key, timeout, as_json)
        return
    if archive is not None:
        raise CliError("--archive applies with --anchors")
    anchor = _anchor(expect) if expect is not None else None
    if from_seq is not None and file is None:
        raise CliError("--from-seq applies to --file (the live trail is walked from #1)")
    if file is not None:
        with read_export(file) as lines:
            report = walk_export(
                lines, from_seq=from_seq, anchor=ChainHead(*anchor) if anchor else None
            )
        if report.start == "anchor":
            anchor = None
    else:
        report = _walk_live(_client_with(ctx, timeout))
    out: dict[str, Any] = {
        "intact": report.intact,
        "checked": report.checked,
        "start_seq": report.start_seq,
        "start": report.start,
        "head_seq": report.head.seq,
        "head_hash": report.head.hash,
        "first_break": asdict(report.first_break) if report.first_break else None,
    }
    if anchor is not None and out["intact"]:
        out["first_break"] = _anchor_problem(ctx, anchor, file)
        out["intact"] = out["first_break"] is None
    signed: Anchor | None = None
    if file is None:
        signed = _latest_anchor(ctx, public_key=None)
        out["latest_anchor"] = asdict(signed) if signed is not None else None
        out["anchored_through"] = signed.seq if signed is not None else 0
        if signed is not None and out["intact"]:
            out["first_break"] = _latest_anchor_problem(ctx, signed, report.head, report.start_seq)
            out["intact"] = out["first_break"] is None
    if as_json:
        print_json(out)
    elif out["intact"]:
        print(
            f"intact: {out['checked']} events checked from #{out['start_seq']} "
            f"({_START[out['start']]}); head #{out['head_seq']} {out['head_hash']}"
        )
        if file is None:
            print(_coverage(signed, report.head))
    else:
        broken = out["first_break"]
        print(f"BROKEN at event #{broken['seq']} {broken['event_id']}: {broken['problem']}")
    if not out["intact"]:
        raise typer.Exit(1)


_START = {
    "genesis": "the start of the trail",
    "pruned": "the base of a pruned trail",
    "anchor": "continuing the --expect anchor",
    "from-seq": "--from-seq: NOT anchored, earlier events unchecked",
}


def _client_with(ctx: typer.Context, timeout: float) -> AdminClient:
    if timeout <= 0:
        raise CliError(f"--timeout must be more than 0 seconds, not {timeout}")
    return replace(client(ctx), timeout=timeout)


def _head_of(headers: httpx.Headers) -> ChainHead:
    seq, _, head_hash = headers.get(CHAIN_HEAD_HEADER, "").partition(":")
    if not seq.isdigit():
        raise CliError(f"tether sent no {CHAIN_HEAD_HEADER} header: is it an older version?")
    return ChainHead(int(seq), head_hash)


def _base_of(headers: httpx.Headers) -> ChainHead:
    seq, _, base_hash = headers.get(CHAIN_BASE_HEADER, f"0:{GENESIS}").partition(":")
    return ChainHead(int(seq), base_hash) if seq.isdigit() else ChainHead(0, GENESIS)


def _walk_live(admin: AdminClient) -> ChainReport:
    with admin.stream_lines("/audit/export", {"after_seq": "0"}) as (headers, lines):
        head, base = _head_of(headers), _base_of(headers)
        walker = ChainWalker(base)
        with progress_bar("verifying", head.seq) as advance:
            for line in lines:
                advance()
                if not walker.feed(orjson.loads(line)):
                    return walker.report(base.seq + 1, "pruned" if base.seq else "genesis")
    walker.expect_head(head)
    return walker.report(base.seq + 1, "pruned" if base.seq else "genesis")


def _public_key(ctx: typer.Context) -> str:
    found = client(ctx).call("GET", "/audit/public-key")
    return str(found["public_key"])


def _verify_anchored(
    ctx: typer.Context,
    anchors_at: str,
    archive: str | None,
    public_key: str | None,
    timeout: float,
    as_json: bool,
) -> None:
    key = public_key or _public_key(ctx)
    anchors, forged = load_anchors(destination(anchors_at), key)
    if archive is not None:
        lines = archived_lines(archive, destination(archive))
        first = next(lines, None)
        if first is None:
            raise CliError(f"{archive} holds no exported events")
        event = orjson.loads(first)
        base = (
            ChainHead(0, GENESIS)
            if event["seq"] == 1
            else ChainHead(event["seq"] - 1, event["prev_hash"])
        )
        check = check_against_anchors(parsed(_chained(first, lines)), anchors, base, None)
    else:
        admin = _client_with(ctx, timeout)
        with admin.stream_lines("/audit/export", {"after_seq": "0"}) as (headers, lines):
            check = check_against_anchors(
                parsed(lines), anchors, _base_of(headers), _head_of(headers)
            )
    report = check.report
    broken = asdict(report.first_break) if report.first_break else None
    if forged and broken is None:
        broken = {
            "seq": 0,
            "event_id": "",
            "problem": f"{len(forged)} anchor(s) not signed by tether's key: {forged[0]}",
        }
    out = {
        "intact": broken is None,
        "checked": report.checked,
        "anchors": check.anchors,
        "anchors_matched": check.checked,
        "forged_anchors": forged,
        "head_seq": report.head.seq,
        "head_hash": report.head.hash,
        "first_break": broken,
    }
    if as_json:
        print_json(out)
    elif broken is None:
        print(
            f"intact: {report.checked} events checked, {check.checked} of {check.anchors} "
            f"signed anchors matched; head #{report.head.seq} {report.head.hash}"
        )
    else:
        print(f"BROKEN at event #{broken['seq']} {broken['event_id']}: {broken['problem']}")
    if broken is not None:
        raise typer.Exit(1)


def _chained(first: bytes, rest: Any) -> Any:
    yield first
    yield from rest


def _anchor_of(sink: ExportWriter) -> str | None:
    if sink.last is None:
        return None
    head = orjson.loads(sink.last)
    return f"{head['seq']}:{head['hash']}"


def _latest_anchor(ctx: typer.Context, public_key: str | None) -> Anchor | None:
    """The newest signed anchor tether keeps, its signature checked (a forged one is an
    error, not a pass)."""
    found = client(ctx).call("GET", "/audit/anchors/latest")
    if not found.get("anchor"):
        return None
    anchor = Anchor.from_json(orjson.dumps(found["anchor"]), "the latest anchor")
    if not anchor.verifies_with(public_key or _public_key(ctx)):
        raise CliError(
            f"the latest anchor (#{anchor.seq}) is not signed by tether's audit key: "
            "the anchor destination was tampered with"
        )
    return anchor


def _latest_anchor_problem(
    ctx: typer.Context, anchor: Anchor, head: ChainHead, start_seq: int
) -> dict[str, Any] | None:
    """A trail that ends before the latest signed anchor lost its tail, even when what is
    left chains up; one that reaches it must still hold the anchored event's hash."""
    if head.seq < anchor.seq:
        return {
            "seq": head.seq + 1,
            "event_id": "",
            "problem": f"the trail ends at #{head.seq}, but event #{anchor.seq} was signed in "
            f"an anchor at {_when(anchor.ts)}: events #{head.seq + 1}..#{anchor.seq} were cut",
        }
    if anchor.seq < start_seq:
        return None  # a prune's anchor: its event is gone on purpose (--anchors checks it)
    return _anchor_problem(ctx, (anchor.seq, anchor.hash), None)


def _when(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _coverage(anchor: Anchor | None, head: ChainHead) -> str:
    if anchor is None:
        return (
            "not anchored: no signed anchor is kept (set TETHER_AUDIT_ANCHOR_DEST), so a cut "
            "tail or a wholesale re-hash would not be found"
        )
    after = head.seq - anchor.seq
    return (
        f"anchored: the latest signed anchor (#{anchor.seq}, {_when(anchor.ts)}) covers "
        f"#1..#{anchor.seq}; {after} newer event(s) are checked by the chain alone"
    )


def _anchor(expect: str) -> tuple[int, str]:
    seq_text, _, expected_hash = expect.partition(":")
    if not seq_text.isdigit() or len(expected_hash) != 64:
        raise CliError(
            f"--expect takes SEQ:HASH (a number, a colon, 64 hex digits), not {expect!r}"
        )
    return int(seq_text), expected_hash


def _anchor_problem(
    ctx: typer.Context, anchor: tuple[int, str], file: str | None
) -> dict[str, Any] | None:
    """Whether the trail still holds event SEQ with hash HASH (a head noted earlier)."""
    seq, expected_hash = anchor
    found: dict[str, Any] | None = None
    if file is not None:
        with read_export(file) as lines:
            found = next((e for e in map(orjson.loads, lines) if e.get("seq") == seq), None)
    else:
        page = client(ctx).call("GET", "/audit", params={"after_seq": str(seq - 1), "limit": "1"})
        found = page[0] if page and page[0].get("seq") == seq else None
    if found is None:
        return {"seq": seq, "event_id": "", "problem": f"event #{seq} is no longer in the trail"}
    if found.get("hash") != expected_hash:
        return {
            "seq": seq,
            "event_id": found.get("id", ""),
            "problem": f"event #{seq} no longer has the hash noted earlier: it was rewritten",
        }
    return None


@app.command("export")
@reports_errors
def export(
    ctx: typer.Context,
    out: str | None = ExportOutOption,
    dest: str | None = DestOption,
    after_seq: int = typer.Option(0, "--after-seq", help="Only events after this number."),
    timeout: float = TimeoutOption,
    as_json: bool = JsonOption,
) -> None:
    """Copy the trail, as stored and hash-chained, to a file or S3 object you own; or,
    with --dest, add what is new since the last run to a directory or S3 prefix."""
    admin = _client_with(ctx, timeout)
    if (out is None) == (dest is None):
        raise CliError("give one of --out (a whole export) or --dest (incremental)")
    if dest is not None:
        _export_incremental(admin, dest, as_json)
        return
    assert out is not None
    with (
        export_to(out, _anchor_of) as sink,
        admin.stream_lines("/audit/export", {"after_seq": str(after_seq)}) as (headers, lines),
        progress_bar("exporting", max(0, _head_of(headers).seq - after_seq)) as advance,
    ):
        for line in lines:
            sink.write(line)
            advance()
    anchor = _anchor_of(sink)
    if as_json:
        print_json({"out": out, "events": sink.count, "anchor": anchor})
        return
    if sink.last is None:
        print(f"no events after #{after_seq}; {out} is empty")
        return
    print(
        f"exported {sink.count} events to {out}, up to #{anchor.split(':')[0] if anchor else ''}\n"
        f"note this anchor to prove later that nothing before it changed: --expect {anchor}"
    )


@app.command("replay")
@reports_errors
def replay(
    ctx: typer.Context,
    session: str,
    as_json: bool = JsonOption,
) -> None:
    """A session as a timeline: every decision, call, tool use and result, in order."""
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = client(ctx).call(
            "GET",
            "/audit",
            params={"session": session, "after_seq": str(after), "limit": str(REPLAY_PAGE)},
        )
        events += page
        if len(page) < REPLAY_PAGE:
            break
        after = page[-1]["seq"]
    if not events:
        raise CliError(f"no audit events for session {session!r}")
    if as_json:
        print_json(events)
        return
    print_timeline(session, events)


def _export_incremental(admin: AdminClient, dest: str, as_json: bool) -> None:
    target = destination(dest)
    cursor = read_cursor(target)
    after = cursor[0] if cursor else 0
    kind = "s3" if dest.startswith("s3://") else "directory"
    query: dict[str, str | None] = {"after_seq": str(after), "dest": kind}
    with admin.stream_lines("/audit/export", query) as (headers, lines):
        head = _head_of(headers)
        with progress_bar("exporting", max(0, head.seq - after)) as advance:
            run = archive_events(dest, _counted(lines, advance), target)
    last = run.last or cursor
    anchor = f"{last[0]}:{last[1]}" if last else None
    if as_json:
        print_json({"dest": dest, "events": run.events, "files": run.files, "anchor": anchor})
    elif run.events == 0:
        print(f"nothing new after #{after}; {dest} is up to date")
    else:
        print(f"exported {run.events} events after #{after} to {dest} ({run.files} files)")


def _counted(lines: Any, advance: Any) -> Any:
    for line in lines:
        advance()
        yield line


@app.command("public-key")
@reports_errors
def public_key(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """The Ed25519 public key that signs audit anchors: keep a copy, and pass it to
    `verify --anchors --public-key` to check anchors without trusting the server."""
    found = client(ctx).call("GET", "/audit/public-key")
    if as_json:
        print_json(found)
        return
    print(f"{found['public_key']}  (key id {found['key_id']})")


@app.command("prune")
@reports_errors
def prune(
    ctx: typer.Context,
    before: str = typer.Option(..., "--before", help="Remove events before this time."),
    export_dest: str = typer.Option(
        ..., "--export", help="The incremental export (--dest) holding those events."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Remove old events, only once a verified export holds them. The export at --export
    is walked here (its hash chain must be intact) and must reach past every event before
    --before; the last removed event is signed as an anchor and written there too."""
    target = destination(export_dest)
    report = walk_export(archived_lines(export_dest, target), from_seq=None)
    if report.start_seq > 1 and report.first_break is not None:
        lines = archived_lines(export_dest, target)
        first = orjson.loads(next(lines))
        report = walk_export(
            _chained(orjson.dumps(first), lines),
            anchor=ChainHead(first["seq"] - 1, first["prev_hash"]),
        )
    if not report.intact or report.checked == 0:
        problem = report.first_break.problem if report.first_break else "it holds no events"
        raise CliError(f"the export at {export_dest} does not verify: {problem}")
    pruned = client(ctx).call(
        "POST",
        "/audit/prune",
        {
            "before": as_instant("--before", before),
            "export_seq": report.head.seq,
            "export_hash": report.head.hash,
        },
    )
    anchor = pruned.get("anchor")
    if anchor is not None:
        name = Anchor.from_json(orjson.dumps(anchor), "the prune anchor").name
        target.write(name, orjson.dumps(anchor))
    if as_json:
        print_json(pruned)
    elif pruned["pruned_through"] == 0:
        print(f"no events before {before}; nothing removed")
    else:
        print(
            f"removed events up to #{pruned['pruned_through']} (the export held up to "
            f"#{report.head.seq}); the cut is anchored in {export_dest}"
        )
