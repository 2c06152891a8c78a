"""``tether policy suggest|lint`` and ``policy test --replay``: a policy held against what
the project's agents really did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from tether.cli.client import CliError
from tether.cli.context import JsonOption, client, reports_errors
from tether.cli.durations import parse_duration
from tether.cli.output import console, errors, print_json, print_table

__all__ = ["lint", "print_lint_warnings", "replay", "suggest"]

ProjectOption = typer.Option(..., "--project", "-p", help="The project.")
SinceOption = typer.Option("7d", "--since", help="How far back in the trail (e.g. 24h, 7d).")
GeneraliseOption = typer.Option(
    None, "--generalise", "-g", help="Widen rules: bucket, prefix or tag (repeatable)."
)
OutOption = typer.Option(None, "--out", "-o", help="Write the policy here.")
LintFileArgument = typer.Argument(None, help="A policy file (default: the policy in force).")


def _seconds(text: str, option: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise CliError(f"{option}: {exc}") from None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


def replay(
    ctx: typer.Context,
    project: str,
    period: str,
    candidate: Path,
    expect: list[str],
    as_json: bool,
) -> None:
    """Every decision of PERIOD re-decided by CANDIDATE; exits 1 on a change that no
    ``--expect`` covers."""
    body = {
        "source": _read(candidate),
        "since_seconds": _seconds(period, "--replay"),
        "expect": expect,
    }
    out = client(ctx).call("POST", f"/projects/{project}/policy/replay", body)
    if as_json:
        print_json(out)
    else:
        console.print(
            f"{project}: {out['decisions']:,} decisions ({out['distinct']:,} distinct) of the "
            f"last {period} replayed against {candidate} in {out['seconds']} s",
            highlight=False,
        )
        for kind in ("denied", "allowed"):
            changes = out[f"newly_{kind}"]
            if changes:
                columns = ["agent", "action", "resource", "count", "reason"]
                print_table(
                    changes, columns, title=f"newly {kind}: {out[f'newly_{kind}_calls']} call(s)"
                )
        colour = "red" if out["unexpected_total"] else "green"
        console.print(
            f"[{colour}]{out['unexpected_total']} change(s) not covered by --expect[/{colour}]"
        )
    if out["unexpected_total"]:
        raise typer.Exit(1)


@reports_errors
def suggest(
    ctx: typer.Context,
    project: str = ProjectOption,
    since: str = SinceOption,
    agent: str | None = typer.Option(None, "--agent", "-a", help="Only this agent's calls."),
    generalise: list[str] | None = GeneraliseOption,
    out_file: Path | None = OutOption,
) -> None:
    """A least-privilege Cedar policy from the trail: a permit per (agent or project,
    action) over the narrowest prefixes that cover what was allowed; deletions ask."""
    body: dict[str, Any] = {
        "since_seconds": _seconds(since, "--since"),
        "agent": agent,
        "generalise": generalise or [],
    }
    out = client(ctx).call("POST", f"/projects/{project}/policy/suggest", body)
    if out_file is not None:
        out_file.write_text(out["source"])
    else:
        print(out["source"], end="")
    errors.print(
        f"{out['rules']} rules covering {out['covered_calls']:,} of {out['decisions']:,} "
        f"decisions on {out['resources']:,} resources; check it with `tether policy test "
        f"--replay {since} --candidate FILE -p {project}`",
        highlight=False,
    )


@reports_errors
def lint(
    ctx: typer.Context,
    file: Path | None = LintFileArgument,
    project: str = ProjectOption,
    days: int = typer.Option(30, "--days", help="A rule unmatched this long is unused."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings too."),
    as_json: bool = JsonOption,
) -> None:
    """Findings a reviewer would flag; exits 1 on errors (with --strict, on warnings)."""
    body: dict[str, Any] = {"days": days}
    if file is not None:
        body["source"] = _read(file)
    out = client(ctx).call("POST", f"/projects/{project}/policy/lint", body)
    if as_json:
        print_json(out)
    elif out["findings"]:
        print_table(out["findings"], ["severity", "code", "line", "rule", "message"])
    else:
        console.print("[green]no findings[/green]")
    if out["errors"] or (strict and out["warnings"]):
        raise typer.Exit(1)


def print_lint_warnings(ctx: typer.Context, project: str) -> None:
    """After ``policy apply``: the new policy's findings, on stderr; never fails the apply."""
    try:
        out = client(ctx).call("POST", f"/projects/{project}/policy/lint", {"days": 30})
    except CliError as exc:
        errors.print(f"lint skipped: {escape(exc.message)}", highlight=False)
        return
    for finding in out["findings"]:
        errors.print(
            f"[yellow]{finding['severity']}[/yellow] line {finding['line']} "
            f"{escape(finding['rule'])}: {escape(finding['message'])}",
            highlight=False,
        )
