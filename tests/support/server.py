"""A real tether server on a free port, in a thread with its own event loop.

Tests talk to it over HTTP with real clients (httpx, the CLI, the anthropic SDK),
exactly as a deployment would be used.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from tests.support.databases import seed_sqlite
from tether.cli.event_loop import new_event_loop
from tether.config import Settings
from tether.runtime import Runtime
from tether.server import build_app, make_runner, make_site

PERMIT_ALL = "permit(principal, action, resource);\n"
"""For tests about something other than policy: every action permitted (deletions still
need an approval, as the project default says)."""


@dataclass
class RunningTether:
    url: str
    admin_token: str
    settings: Settings
    runtime: Runtime
    _loop: asyncio.AbstractEventLoop
    _thread: threading.Thread
    _runner: web.AppRunner
    _agent_keys: dict[str, str] = field(default_factory=dict)

    def admin(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/admin/v1",
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            timeout=30,
        )

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self.admin() as client:
            return client.request(method, path, **kwargs)

    def create_project(
        self, name: str, anthropic_key: str | None = None, policy: str | None = PERMIT_ALL
    ) -> dict[str, Any]:
        """Create a project with ``policy`` in force (None: none, so default deny); with
        ``anthropic_key``, also store its upstream credential."""
        response = self.call("POST", "/projects", json={"name": name, "default_budgets": False})
        assert response.status_code == 201, response.text
        if policy is not None:
            self.apply_policy(name, policy)
        if anthropic_key is not None:
            stored = self.call(
                "PUT", f"/projects/{name}/credentials/anthropic", json={"secret": anthropic_key}
            )
            assert stored.status_code == 200, stored.text
        return response.json()

    def apply_policy(self, project: str, source: str) -> dict[str, Any]:
        applied = self.call("PUT", f"/projects/{project}/policy", json={"source": source})
        assert applied.status_code in (200, 201), applied.text
        result: dict[str, Any] = applied.json()
        return result

    def set_guards(self, project: str, **fields: Any) -> dict[str, Any]:
        """Change a project's guards (None turns one off); in force here at once."""
        response = self.call("PATCH", f"/projects/{project}/guards", json=fields)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def create_agent(self, name: str, project: str) -> str:
        response = self.call("POST", "/agents", json={"name": name, "project": project})
        assert response.status_code == 201, response.text
        key: str = response.json()["key"]
        return key

    def run(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop (for inspecting internals in store tests)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        async def shutdown() -> None:
            await self._runner.cleanup()
            await self.runtime.stop()

        try:
            self.run(shutdown())
        except TimeoutError:
            stacks = []
            for task in asyncio.all_tasks(self._loop):
                stacks.append(f"{task.get_name()}: {_await_chain(task.get_coro())}")
            raise TimeoutError("tether did not stop; tasks:\n" + "\n".join(stacks)) from None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def _await_chain(coro: Any) -> str:
    """Where a suspended task waits, outermost first (for diagnosing a hung shutdown)."""
    places = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            places.append(f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " -> ".join(places)


_PORTS_OUTSIDE_EPHEMERAL = range(20000, 32000)
"""Below Linux's ephemeral range (32768-60999): a port the kernel hands out for ``bind(0)``
or an outgoing connection elsewhere in the suite can never be the one picked here, so a
server started later on it does not lose a race to an unrelated socket."""


def _this_workers_ports() -> range:
    """This xdist worker's own slice of the range, so two workers never pick the same port
    between ``free_port`` checking it and the server binding it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    width = len(_PORTS_OUTSIDE_EPHEMERAL) // max(count, 1)
    first = _PORTS_OUTSIDE_EPHEMERAL.start + int(worker or 0) % max(count, 1) * width
    return range(first, first + width)


def free_port() -> int:
    """A loopback port nothing listens on now (for servers started as processes)."""
    ports = _this_workers_ports()
    for _ in range(200):
        port = random.choice(ports)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {ports.start}-{ports.stop - 1}")


def start_tether(data_dir: Path, database_url: str, **overrides: Any) -> RunningTether:
    """A new SQLite database starts as a copy of a migrated one (``seed_sqlite``)."""
    if database_url.startswith("sqlite"):
        seed_sqlite(database_url)
    settings = Settings(
        host="127.0.0.1",
        port=0,
        data_dir=data_dir,
        database_url=database_url,
        bootstrap_admin_token=overrides.pop("bootstrap_admin_token", None),
        change_poll_seconds=overrides.pop("change_poll_seconds", 0.2),
        budget_lease_percent=overrides.pop("budget_lease_percent", 0.0),
        **overrides,
    )
    loop = new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True, name="tether-server")
    thread.start()

    async def boot() -> tuple[Runtime, web.AppRunner, int, str | None]:
        runtime = await Runtime.start(settings)
        runner = make_runner(build_app(runtime), settings)
        await runner.setup()
        site = make_site(runner, settings, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return runtime, runner, port, await runtime.create_bootstrap_token()

    try:
        runtime, runner, port, secret = asyncio.run_coroutine_threadsafe(boot(), loop).result(60)
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        raise
    token_file = data_dir / "admin.token"
    token = secret or settings.bootstrap_admin_token
    if secret:
        data_dir.mkdir(parents=True, exist_ok=True)
        token_file.write_text(secret)
    elif token is None:
        token = token_file.read_text().strip()
    return RunningTether(
        url=f"http://127.0.0.1:{port}",
        admin_token=token,
        settings=replace(settings, port=port),
        runtime=runtime,
        _loop=loop,
        _thread=thread,
        _runner=runner,
    )
