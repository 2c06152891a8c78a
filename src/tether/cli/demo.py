"""``tether demo``: tether on a temporary data directory, the bundled fake Anthropic API
and a small misbehaving fleet, so the dashboard has something true to show at once."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console

from tether.cli.demo_fleet import Fleet, setup_fleet
from tether.config import Settings
from tether.fakes.anthropic import FakeAnthropic, FakeReply
from tether.fakes.serving import serve_on_loopback
from tether.runtime import Runtime
from tether.server import build_app, make_runner, make_site

__all__ = ["DemoOptions", "run_demo"]

console = Console(stderr=True, highlight=False)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    host: str
    port: int
    minutes: float
    keep: bool


async def run_demo(options: DemoOptions) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="tether-demo-"))
    fake = FakeAnthropic(default=FakeReply(text="Done. ", output_tokens=120, fill_text=True))
    fake_runner, fake_url = await serve_on_loopback(fake.app())
    settings = Settings(
        host=options.host,
        port=options.port,
        data_dir=data_dir,
        anthropic_base_url=fake_url,
        approval_reap_seconds=5,
        sqlite_synchronous="NORMAL",
        shutdown_grace_seconds=2,
    )
    runtime = await Runtime.start(settings)
    runner = make_runner(build_app(runtime), settings)
    try:
        await runner.setup()
        await make_site(runner, settings, options.host, options.port).start()
        token = await runtime.create_bootstrap_token()
        assert token is not None
        url = f"http://{options.host}:{options.port}"
        admin = httpx.AsyncClient(
            base_url=f"{url}/admin/v1", headers={"Authorization": f"Bearer {token}"}
        )
        async with admin:
            agents = await setup_fleet(admin, fake.api_key)
        console.print(
            f"tether demo: {len(agents)} agents in 2 projects, for {options.minutes:g} min"
        )
        console.print(f"dashboard: {url}/ui/  (data in {data_dir})")
        console.print("log in with this admin token:")
        print(token, flush=True)
        fleet = asyncio.create_task(Fleet(url, agents).run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(fleet), options.minutes * 60)
        fleet.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fleet
        console.print("tether demo: time is up, stopping")
    finally:
        await runner.cleanup()
        await runtime.stop()
        await fake_runner.cleanup()
        if not options.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
