"""``tether admin``: recovery commands that need local access to tether's database
instead of an admin token (which is what they recover)."""

from __future__ import annotations

import time

import typer
from rich.markup import escape

from tether.cli.event_loop import run_event_loop
from tether.cli.local_store import local_database, printable_url
from tether.cli.output import errors
from tether.cli.token_file import save_token
from tether.config import Settings
from tether.errors import TetherError
from tether.store.admin_tokens import AdminTokenStore
from tether.store.records import Role

__all__ = ["app"]

app = typer.Typer(help="Recovery on the machine that holds tether's data (no admin token).")


async def _create_token(settings: Settings, name: str) -> str:
    async with local_database(settings) as db:
        _, secret = await AdminTokenStore(db).create(name, Role.ADMIN)
    return secret


@app.command("reset-token")
def reset_token() -> None:
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
    errors.print(
        escape(
            f"new admin token {name!r} for {printable_url(settings)} "
            f"(shown once; saved to {token_file}, mode 0600):"
        ),
        highlight=False,
        soft_wrap=True,
    )
    print(secret, flush=True)
