"""``tether audit``."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import httpx
import orjson
import typer

from tether.audit.chain import ChainHead, ChainReport, ChainWalker, walk_export
from tether.cli.audit_storage import ExportWriter, export_to, read_export
from tether.cli.audit_timeline import print_timeline
from tether.cli.client import AdminClient, CliError
from tether.cli.context import AgentFilter, JsonOption, ProjectFilter, client, reports_errors
from tether.cli.output import print_json, print_more, print_records
from tether.cli.progress import progress_bar
from tether.cli.times import SinceOption, UntilOption, as_instant
from tether.web.headers import CHAIN_HEAD_HEADER

app = typer.Typer(help="The audit trail.", no_args_is_help=True)
REPLAY_PAGE = 1000
ExportFileOption = typer.Option(
    None, "--file", "-f", help="Check an export (a file or s3://BUCKET/KEY) offline."
)
ExportOutOption = typer.Option(
    ..., "--out", "-o", help="Where to write (JSON lines): a file, or s3://BUCKET/KEY."
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
    session: str | None = typer.Option(None, "--session", "-s"),
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
    timeout: float = TimeoutOption,
    as_json: bool = JsonOption,
) -> None:
    """Walk the hash chain; exit 1 at the first changed, missing or re-ordered event. The
    live trail is streamed and checked here, so its length is no limit; an export must
    start at #1 unless --expect or --from-seq says where it begins."""
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
    if as_json:
        print_json(out)
    elif out["intact"]:
        print(
            f"intact: {out['checked']} events checked from #{out['start_seq']} "
            f"({_START[out['start']]}); head #{out['head_seq']} {out['head_hash']}"
        )
    else:
        broken = out["first_break"]
        print(f"BROKEN at event #{broken['seq']} {broken['event_id']}: {broken['problem']}")
    if not out["intact"]:
        raise typer.Exit(1)


_START = {
    "genesis": "the start of the trail",
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


def _walk_live(admin: AdminClient) -> ChainReport:
    walker = ChainWalker()
    with admin.stream_lines("/audit/export", {"after_seq": "0"}) as (headers, lines):
        head = _head_of(headers)
        with progress_bar("verifying", head.seq) as advance:
            for line in lines:
                advance()
                if not walker.feed(orjson.loads(line)):
                    return walker.report()
    walker.expect_head(head)
    return walker.report()


def _anchor_of(sink: ExportWriter) -> str | None:
    if sink.last is None:
        return None
    head = orjson.loads(sink.last)
    return f"{head['seq']}:{head['hash']}"


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
    out: str = ExportOutOption,
    after_seq: int = typer.Option(0, "--after-seq", help="Only events after this number."),
    timeout: float = TimeoutOption,
    as_json: bool = JsonOption,
) -> None:
    """Copy the trail, as stored and hash-chained, to a file or S3 object you own."""
    admin = _client_with(ctx, timeout)
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
