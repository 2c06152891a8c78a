"""``tether admin``: recovery commands that need local access to tether's database
instead of an admin token (which is what they recover)."""

from __future__ import annotations

import getpass
import json
import time

import typer
from rich.markup import escape
from sqlalchemy.engine import make_url

from tether.audit.appender import open_appender
from tether.audit.event import AuditEvent
from tether.audit.log import AuditLog
from tether.cli.context import JsonOption
from tether.cli.event_loop import run_event_loop
from tether.cli.local_store import local_database, printable_url
from tether.cli.output import errors
from tether.cli.token_file import save_token
from tether.config import Settings
from tether.errors import TetherError
from tether.records.fleet import Role
from tether.store.admin_tokens import AdminTokenStore
from tether.store.database import Database
from tether.store.sqlite_writer import SqliteWriter

__all__ = ["app"]

app = typer.Typer(help="Recovery on the machine that holds tether's data (no admin token).")


async def _create_token(settings: Settings, name: str) -> str:
    async with local_database(settings) as db:
        _, secret = await AdminTokenStore(db).create(name, Role.ADMIN)
        await _record_reset(db, name)
    return secret


async def _record_reset(db: Database, name: str) -> None:
    """A token made without the admin API is still in the trail, with who made it here."""
    writer = None if db.is_postgres else SqliteWriter(make_url(db.url).database or ":memory:")
    audit = AuditLog(open_appender(db.url, writer))
    audit.start()
    try:
        await audit.record(
            AuditEvent(
                actor=f"local:{getpass.getuser()}",
                source="admin",
                action="admin:tokens.reset",
                resource=f"admin_tokens/{name}",
                result="ok",
                reason="tether admin reset-token, run with local access to the database",
            )
        )
    finally:
        await audit.stop()


@app.command("reset-token")
def reset_token(as_json: bool = JsonOption) -> None:
    """Create a new admin token in the database of TETHER_DATA_DIR / TETHER_DATABASE_URL,
    print it once and save it where the CLI finds it (mode 0600). Old tokens stay valid:
    revoke them with `tether tokens revoke NAME`."""
    name = time.strftime("reset-%Y%m%d-%H%M%S", time.gmtime())
    secret = ""
    try:
        settings = Settings.from_env()

        async def main() -> None:
            nonlocal secret
            secret = await _create_token(settings, name)

        run_event_loop(main())
    except TetherError as exc:
        errors.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
        raise typer.Exit(2) from None
    token_file = settings.data_dir / "admin.token"
    save_token(token_file, secret)
    if as_json:
        print(json.dumps({"name": name, "token": secret, "saved_to": str(token_file)}))
        return
    errors.print(
        escape(
            f"new admin token {name!r} for {printable_url(settings)} "
            f"(shown once; saved to {token_file}, mode 0600):"
        ),
        highlight=False,
        soft_wrap=True,
    )
    print(secret, flush=True)
