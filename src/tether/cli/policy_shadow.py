"""``tether policy shadow`` and ``policy apply --shadow``: a candidate policy decided beside
the one in force on every decision, its differences reported, then promoted or cleared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from tether.cli.client import CliError
from tether.cli.context import JsonOption, client, reports_errors
from tether.cli.durations import parse_duration
from tether.cli.output import console, errors, print_json, print_table

__all__ = ["apply_shadow", "shadow"]

DIRECTIONS = {
    "would_deny": "would deny",
    "would_allow": "would allow",
    "would_ask": "would ask a human",
}


def apply_shadow(ctx: typer.Context, file: Path, source: str, project: str, as_json: bool) -> None:
    """FILE becomes PROJECT's shadow policy; the policy in force stays in force."""
    try:
        out = client(ctx).call("PUT", f"/projects/{project}/policy/shadow", {"source": source})
    except CliError as exc:
        raise CliError(f"{file}: {exc.message}") from None
    if as_json:
        print_json(out)
        return
    state = "now runs in shadow" if out["changed"] else "already runs in shadow"
    print(
        f"project {project}: {file} {state} ({out['rules']} rules, sha256 {out['sha256'][:12]}); "
        "the policy in force still decides"
    )
    for warning in out["warnings"]:
        errors.print(f"[yellow]warning[/yellow] {escape(warning)}", highlight=False)
    errors.print(
        f"see where it disagrees with `tether policy shadow -p {project}`", highlight=False
    )


def _report(out: dict[str, Any], project: str) -> None:
    shadow = out["shadow"]
    console.print(
        f"{project}: shadow sha256 {shadow['sha256'][:12]} ({shadow['rules']} rules, by "
        f"{shadow['created_by']} at {shadow['created_at']}) beside policy "
        f"v{out['policy_version']}, since {out['since']}",
        highlight=False,
    )
    console.print(
        f"would deny {out['would_deny']:,}, would allow {out['would_allow']:,}, would ask "
        f"{out['would_ask']:,} decision(s)",
        highlight=False,
    )
    rows = []
    for group in out["differences"]:
        example = group["examples"][0] if group["examples"] else {}
        rows.append(
            {
                "direction": DIRECTIONS.get(group["direction"], group["direction"]),
                "rule": group["rule"],
                "count": group["count"],
                "example": f"{example.get('agent', '')}: {example.get('action', '')} on "
                f"{example.get('resource', '')} (live: {example.get('live', '')})",
            }
        )
    if rows:
        print_table(rows, ["direction", "rule", "count", "example"])
    else:
        console.print("[green]no differences: the shadow decided as the policy in force[/green]")


@reports_errors
def shadow(
    ctx: typer.Context,
    project: str = typer.Option(..., "--project", "-p", help="The project."),
    since: str = typer.Option(
        "7d", "--since", help="How far back to report (never before the shadow started)."
    ),
    promote: bool = typer.Option(
        False, "--promote", help="Make the shadow the policy in force (a new version)."
    ),
    clear: bool = typer.Option(False, "--clear", help="Stop running the shadow policy."),
    as_json: bool = JsonOption,
) -> None:
    """Where PROJECT's shadow policy disagreed with the policy in force (would deny, would
    allow, by rule, with examples); --promote applies it, --clear removes it."""
    if promote and clear:
        raise CliError("choose one of --promote and --clear")
    api = client(ctx)
    path = f"/projects/{project}/policy/shadow"
    if clear:
        api.call("DELETE", path)
        if as_json:
            print_json({"project": project, "cleared": True})
        else:
            print(f"project {project}: shadow policy cleared; the policy in force is unchanged")
        return
    if promote:
        out = api.call("POST", f"{path}/promote")
        if as_json:
            print_json(out)
        else:
            print(
                f"project {project}: shadow promoted, policy v{out['version']} in force "
                f"({out['rules']} rules, sha256 {out['sha256'][:12]})"
            )
        return
    try:
        seconds = parse_duration(since)
    except ValueError as exc:
        raise CliError(f"--since: {exc}") from None
    out = api.call("GET", path, params={"since_seconds": str(seconds)})
    if as_json:
        print_json(out)
    else:
        _report(out, project)
