"""``tether drill kill|pause|audit|rotate``: fire drills on the live deployment."""

from __future__ import annotations

import typer

from tether.cli.context import JsonOption, ProjectOption, client, reports_errors
from tether.cli.output import console, print_json

app = typer.Typer(
    help="Fire drills with a canary agent tether creates and revokes; real agents untouched.",
    no_args_is_help=True,
)


DoorUrlOption = typer.Option(
    None,
    "--door-url",
    help="Knock on this replica's doors (default: the one --url reaches): a kill across replicas.",
)


def _run(
    ctx: typer.Context, drill: str, project: str | None, door_url: str | None, as_json: bool
) -> None:
    if not project:
        raise typer.BadParameter("give the project with -p/--project", param_hint="--project")
    report = client(ctx).call("POST", f"/projects/{project}/drills/{drill}", {"door_url": door_url})
    if as_json:
        print_json(report)
    else:
        verdict = "[green]passed[/green]" if report["ok"] else "[red]FAILED[/red]"
        console.print(f"{drill} drill on {project}: {verdict} in {report['seconds']:.3f} s")
        for name, seconds in report["timings"].items():
            console.print(f"  {name}: {seconds * 1000:.1f} ms")
        for note in report["notes"]:
            console.print(f"  {note}", highlight=False)
    if not report["ok"]:
        raise typer.Exit(1)


@app.command("kill")
@reports_errors
def kill(
    ctx: typer.Context,
    project: str | None = ProjectOption,
    door_url: str | None = DoorUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Kill a canary session; time until each door refuses it."""
    _run(ctx, "kill", project, door_url, as_json)


@app.command("pause")
@reports_errors
def pause(
    ctx: typer.Context,
    project: str | None = ProjectOption,
    door_url: str | None = DoorUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Pause the canary (never the real agents), time the refusal, resume."""
    _run(ctx, "pause", project, door_url, as_json)


@app.command("audit")
@reports_errors
def audit(
    ctx: typer.Context,
    project: str | None = ProjectOption,
    door_url: str | None = DoorUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Answer "what did this agent do 14:00-14:30?" for a real agent; timed."""
    _run(ctx, "audit", project, door_url, as_json)


@app.command("rotate")
@reports_errors
def rotate(
    ctx: typer.Context,
    project: str | None = ProjectOption,
    door_url: str | None = DoorUrlOption,
    as_json: bool = JsonOption,
) -> None:
    """Rotate the canary's key; the old key is refused, other agents keep theirs."""
    _run(ctx, "rotate", project, door_url, as_json)
