"""``tether policy``: apply, show, diff and test a project's Cedar policy."""

from __future__ import annotations

import difflib
import json
import tomllib
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from tether.cli import policy_probe, policy_shadow, policy_trail
from tether.cli.client import CliError
from tether.cli.context import JsonOption, client, reports_errors
from tether.cli.output import console, errors, print_json, print_table
from tether.cli.policy_source import current_policy
from tether.policy.starter import claude_code_starter

app = typer.Typer(help="A project's Cedar policy: what its agents may touch.", no_args_is_help=True)
app.command("probe")(policy_probe.probe)
app.command("suggest")(policy_trail.suggest)
app.command("lint")(policy_trail.lint)
app.command("shadow")(policy_shadow.shadow)

ProjectOption = typer.Option(..., "--project", "-p", help="The project.")
EXPECTATIONS = ("allow", "deny", "approval")
VersionOption = typer.Option(None, "--version", "-v", help="An earlier version.")
SuiteArgument = typer.Argument(
    None, metavar="[SUITE]", help="TOML or JSON file of probes (not with --replay)."
)
ReplayOption = typer.Option(
    None, "--replay", help="Re-decide every decision of this period (e.g. 7d) with --candidate."
)
ExpectOption = typer.Option(
    None,
    "--expect",
    help="With --replay: an intended change, 'denied|allowed ACTION_GLOB [RESOURCE_GLOB]'.",
)
SuiteProjectOption = typer.Option(
    None, "--project", "-p", help="The project (overrides the suite's)."
)
CandidateOption = typer.Option(
    None, "--candidate", "-c", help="Test this policy file instead of the one in force."
)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


@app.command("apply")
@reports_errors
def apply(
    ctx: typer.Context,
    file: Path,
    project: str = ProjectOption,
    shadow: bool = typer.Option(
        False,
        "--shadow",
        help="Run FILE in shadow: decided beside the policy in force, which still decides.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Validate FILE and make it PROJECT's policy; on errors the old version stays.
    With --shadow, FILE is only evaluated beside it (see `tether policy shadow`)."""
    if shadow:
        policy_shadow.apply_shadow(ctx, file, _read(file), project, as_json)
        return
    try:
        out = client(ctx).call("PUT", f"/projects/{project}/policy", {"source": _read(file)})
    except CliError as exc:
        raise CliError(f"{file}: {exc.message}") from None
    if as_json:
        print_json(out)
        return
    state = "in force" if out["changed"] else "unchanged, already in force"
    print(
        f"project {project}: policy v{out['version']} {state} ({out['rules']} rules, "
        f"sha256 {out['sha256'][:12]})"
    )
    policy_trail.print_lint_warnings(ctx, project)


RootOption = typer.Option(
    Path("."), "--root", help="The working tree (default: the current directory)."
)


@app.command("init")
@reports_errors
def init(
    ctx: typer.Context,
    claude_code: bool = typer.Option(
        False, "--claude-code", help="A starter for Claude Code in a working tree."
    ),
    project: str | None = typer.Option(
        None, "--project", "-p", help="Scope the rules to this project (needed with --apply)."
    ),
    root: Path = RootOption,
    apply_now: bool = typer.Option(False, "--apply", help="Make it PROJECT's policy now."),
    as_json: bool = JsonOption,
) -> None:
    """Print a starter policy (or apply it with --apply) and what it allows (stderr)."""
    if not claude_code:
        raise CliError("choose a starter: --claude-code")
    if apply_now and not project:
        raise CliError("--apply needs --project/-p: the project whose policy it becomes")
    starter = claude_code_starter(str(root.expanduser().resolve()), project)
    applied = None
    if apply_now:
        out = client(ctx).call("PUT", f"/projects/{project}/policy", {"source": starter.source})
        applied = out["version"]
    if as_json:
        print_json({"source": starter.source, "allows": list(starter.summary), "version": applied})
        return
    if apply_now:
        errors.print(
            escape(f"project {project}: starter policy v{out['version']} in force"),
            highlight=False,
        )
    else:
        print(starter.source, end="")
    errors.print("it allows:", highlight=False)
    for line in starter.summary:
        errors.print(f"  - {escape(line)}", highlight=False, soft_wrap=True)


@app.command("show")
@reports_errors
def show(
    ctx: typer.Context,
    project: str = ProjectOption,
    version: int | None = VersionOption,
    as_json: bool = JsonOption,
) -> None:
    """Print the policy in force, or an earlier --version (the Cedar text, ready to edit
    and apply: applying an old version's text rolls back to it)."""
    params = {"version": str(version) if version is not None else None}
    out = client(ctx).call("GET", f"/projects/{project}/policy", params=params)
    if as_json:
        print_json(out)
        return
    errors.print(
        f"# project {project}, policy v{out['version']} by {out['created_by']} "
        f"at {out['created_at']}",
        highlight=False,
    )
    print(out["source"], end="" if out["source"].endswith("\n") else "\n")


@app.command("history")
@reports_errors
def history(ctx: typer.Context, project: str = ProjectOption, as_json: bool = JsonOption) -> None:
    """Every version of PROJECT's policy, newest first."""
    versions = client(ctx).call("GET", f"/projects/{project}/policy/versions")
    columns = ["version", "rules", "sha256", "created_at", "created_by"]
    if as_json:
        print_json(versions)
    else:
        print_table(versions, columns, title=f"{project}: policy versions")


@app.command("diff")
@reports_errors
def diff(
    ctx: typer.Context, file: Path, project: str = ProjectOption, as_json: bool = JsonOption
) -> None:
    """Show how FILE differs from the policy in force (and check that FILE is valid)."""
    candidate = _read(file)
    try:
        client(ctx).call("POST", f"/projects/{project}/policy/validate", {"source": candidate})
    except CliError as exc:
        raise CliError(f"{file}: {exc.message}") from None
    current, version = current_policy(client(ctx), project)
    lines = list(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            candidate.splitlines(keepends=True),
            fromfile=f"{project} v{version} (in force)",
            tofile=str(file),
        )
    )
    if as_json:
        print_json({"in_force_version": version, "changed": bool(lines), "diff": "".join(lines)})
        return
    if not lines:
        print(f"{file} is the policy in force (v{version})")
        return
    for line in lines:
        print(line, end="" if line.endswith("\n") else "\n")


def _load_suite(path: Path) -> tuple[str | None, list[dict[str, Any]]]:
    """The suite's project (if it names one) and its probes, checked."""
    text = _read(path)
    try:
        suite: dict[str, Any] = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise CliError(
            f"{path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}"
        ) from None
    probes = suite.get("probe") or suite.get("probes")
    if not isinstance(probes, list) or not probes:
        raise CliError(
            f"{path} has no probes: add [[probe]] tables (agent, action, resource, expect)"
        )
    for number, probe in enumerate(probes, 1):
        missing = [k for k in ("agent", "action", "resource", "expect") if k not in probe]
        if missing:
            raise CliError(f"{path}: probe {number} lacks {', '.join(missing)}")
        if probe["expect"] not in EXPECTATIONS:
            choices = ", ".join(EXPECTATIONS)
            raise CliError(f"{path}: probe {number} expects {probe['expect']!r}; use {choices}")
    return suite.get("project"), probes


@app.command("test")
@reports_errors
def test(
    ctx: typer.Context,
    suite_file: Path | None = SuiteArgument,
    project: str | None = SuiteProjectOption,
    candidate: Path | None = CandidateOption,
    replay: str | None = ReplayOption,
    expect: list[str] | None = ExpectOption,
    as_json: bool = JsonOption,
) -> None:
    """Run SUITE's probes ("agent X tries ACTION on RESOURCE with TAGS → expect deny");
    exits 1 if any decision differs from its expectation. With ``--replay 7d --candidate
    FILE``: every decision of the period re-decided by FILE; exits 1 on a change no
    ``--expect`` covers."""
    if replay is not None:
        if candidate is None or project is None or suite_file is not None:
            raise CliError("--replay takes --candidate FILE and -p PROJECT, and no SUITE")
        policy_trail.replay(ctx, project, replay, candidate, expect or [], as_json)
        return
    if suite_file is None:
        raise CliError("give a SUITE file of probes, or --replay PERIOD --candidate FILE")
    suite_project, probes = _load_suite(suite_file)
    project = project or suite_project
    if not project:
        raise CliError('which project? pass --project or set project = "…" in the suite')
    body: dict[str, Any] = {
        "probes": [
            {k: p[k] for k in ("agent", "action", "resource", "tags") if k in p} for p in probes
        ]
    }
    if candidate is not None:
        body["source"] = _read(candidate)
    out = client(ctx).call("POST", f"/projects/{project}/policy/evaluate", body)
    rows = []
    for number, (probe, result) in enumerate(zip(probes, out["results"], strict=True), 1):
        rows.append(
            {
                "#": number,
                "agent": probe["agent"],
                "action": probe["action"],
                "resource": probe["resource"],
                "tags": ",".join(f"{k}={v}" for k, v in (probe.get("tags") or {}).items()),
                "expect": probe["expect"],
                "got": result["decision"],
                "ok": "✓" if result["decision"] == probe["expect"] else "✗ MISMATCH",
                "reason": result["reason"],
            }
        )
    failures = [row for row in rows if row["got"] != row["expect"]]
    tested = f"candidate {candidate}" if candidate else f"policy v{out['policy_version']}"
    if as_json:
        print_json({"tested": tested, "probes": rows, "failures": len(failures)})
    else:
        print_table(rows, list(rows[0]), title=f"{project}: {tested}")
        colour = "red" if failures else "green"
        console.print(
            f"[{colour}]{len(rows) - len(failures)} of {len(rows)} probes as expected[/{colour}]"
        )
    if failures:
        raise typer.Exit(1)
