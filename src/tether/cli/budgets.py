"""``tether budgets``."""

from __future__ import annotations

from typing import Any

import typer

from tether.cli.client import CliError
from tether.cli.context import JsonOption, ProjectFilter, client, reports_errors
from tether.cli.output import print_done, print_json, print_line, print_records

app = typer.Typer(help="Budgets: hard limits per project, agent and session.", no_args_is_help=True)
SHORT_ID = 8
"""Tables show the start of each id (unique in practice); `delete` takes any unique start."""
FULL_ID = 32
COLUMNS = [
    "id",
    "project",
    "agent",
    "period",
    "limit_usd",
    "spent_usd",
    "remaining_usd",
]
"""What fits 80 columns; `--json` has every field (reserved, unsettled, period end, tokens);
unsettled reservations get a line of their own under the table."""
UNSETTLED_COLUMNS = ["reservation_id", "project", "period", "reserved_usd", "unsettled_at"]
SETTLED_COLUMNS = ["reservation_id", "project", "period", "reserved_usd", "charged_usd"]


def _thresholds(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CliError(f"--thresholds {text!r}: use percentages like 50,80,100") from None


@app.command("set")
@reports_errors
def set_(
    ctx: typer.Context,
    project: str = typer.Option(..., "--project", "-p", help="The project."),
    agent: str | None = typer.Option(None, "--agent", "-a", help="Budget of this agent only."),
    daily: float | None = typer.Option(None, "--daily", help="USD per day."),
    monthly: float | None = typer.Option(None, "--monthly", help="USD per calendar month."),
    session_limit: float | None = typer.Option(
        None, "--session-limit", help="USD per session, for every session of the project."
    ),
    daily_tokens: int | None = typer.Option(None, "--daily-tokens", help="Tokens per day."),
    monthly_tokens: int | None = typer.Option(
        None, "--monthly-tokens", help="Tokens per calendar month."
    ),
    session_tokens: int | None = typer.Option(None, "--session-tokens", help="Tokens per session."),
    thresholds: str = typer.Option("50,80,100", "--thresholds", help="Alert percentages."),
    as_json: bool = JsonOption,
) -> None:
    """Set daily, monthly and/or per-session limits (in the project's time zone)."""
    wanted = {
        "daily": (daily, daily_tokens),
        "monthly": (monthly, monthly_tokens),
        "session": (session_limit, session_tokens),
    }
    wanted = {period: limits for period, limits in wanted.items() if limits != (None, None)}
    if not wanted:
        raise CliError("give at least one of --daily, --monthly, --session-limit (or a --*-tokens)")
    results = []
    for period, (usd, tokens) in wanted.items():
        body: dict[str, object] = {
            "project": project,
            "period": period,
            "thresholds": _thresholds(thresholds),
        }
        if agent:
            body["agent"] = agent
        if usd is not None:
            body["limit_usd"] = usd
        if tokens is not None:
            body["limit_tokens"] = tokens
        results.append(client(ctx).call("PUT", "/budgets", body))
    if as_json:
        print_json(results)
    else:
        print_records(results, COLUMNS, False, "budgets set")


@app.command("list")
@reports_errors
def list_(
    ctx: typer.Context,
    project: str | None = ProjectFilter,
    as_json: bool = JsonOption,
) -> None:
    """Budgets with limit, spent, remaining (and unsettled, when a process died)."""
    budgets = client(ctx).call("GET", "/budgets", params={"project": project})
    if not as_json:
        budgets = [b | {"id": b["id"][:SHORT_ID]} for b in budgets]
    print_records(budgets, COLUMNS, as_json, "budgets")
    unsettled = [b for b in budgets if b.get("unsettled_usd")]
    if unsettled and not as_json:
        for b in unsettled:
            print_line(
                f"budget {b['id']}: ${b['unsettled_usd']:.4f} unsettled (reserved by a process "
                "that died; counted against the limit, not spent: 'tether budgets unsettled')"
            )


@app.command("delete")
@reports_errors
def delete(ctx: typer.Context, budget_id: str, as_json: bool = JsonOption) -> None:
    """Delete a budget by its id, or the start of it as `tether budgets list` shows it."""
    admin = client(ctx)
    if len(budget_id) < FULL_ID:
        budget_id = _whole_id(admin.call("GET", "/budgets"), budget_id)
    admin.call("DELETE", f"/budgets/{budget_id}")
    print_done({"deleted": "budget", "id": budget_id}, f"deleted budget {budget_id}", as_json)


def _whole_id(budgets: list[dict[str, Any]], start: str) -> str:
    matches = [b["id"] for b in budgets if str(b["id"]).startswith(start)]
    if len(matches) != 1:
        found = "no budget" if not matches else f"{len(matches)} budgets"
        raise CliError(f"{found} with an id starting {start!r}; give more of the id")
    return str(matches[0])


@app.command("unsettled")
@reports_errors
def unsettled(
    ctx: typer.Context,
    project: str | None = ProjectFilter,
    as_json: bool = JsonOption,
) -> None:
    """Reservations a process that died left unsettled: counted against the limit, not
    spent, until settled with `tether budgets settle`."""
    holds = client(ctx).call("GET", "/reservations/unsettled", params={"project": project})
    print_records(holds, UNSETTLED_COLUMNS, as_json, "unsettled reservations")


@app.command("settle")
@reports_errors
def settle(
    ctx: typer.Context,
    reservation_id: str | None = typer.Argument(
        None, help="The reservation, as `tether budgets unsettled` shows it."
    ),
    project: str = typer.Option(..., "--project", "-p", help="The project."),
    all_unsettled: bool = typer.Option(
        False, "--all-unsettled", help="Every unsettled reservation of the project."
    ),
    usd: float | None = typer.Option(
        None, "--usd", help="What the call really cost (at most what it reserved)."
    ),
    as_reserved: bool = typer.Option(
        False, "--as-reserved", help="Charge what each reservation held."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Settle unsettled reservations: `settle RESERVATION_ID -p P --usd X`, or
    `settle --all-unsettled -p P --usd 0` (or `--as-reserved`). Audited."""
    if (reservation_id is None) == (not all_unsettled):
        raise CliError("give a RESERVATION_ID or --all-unsettled")
    if (usd is None) == (not as_reserved):
        raise CliError("give --usd (what the call really cost) or --as-reserved")
    body: dict[str, object] = {
        "project": project,
        "all_unsettled": all_unsettled,
        "as_reserved": as_reserved,
    }
    if reservation_id is not None:
        body["reservation_id"] = reservation_id
    if usd is not None:
        body["usd"] = usd
    settled = client(ctx).call("POST", "/reservations/settle", body)
    print_records(settled, SETTLED_COLUMNS, as_json, f"settled {len(settled)} reservation parts")
