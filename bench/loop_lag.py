"""How long each worst input holds the event loop: a probe task sleeps 1 ms over and over
on the server's own loop and records how late it wakes. The server runs in this process
(SQLite, a fresh data dir) and the inputs are sent one at a time, so each lag is that
input's alone; the trivial hook call (``ls``) is the same-run baseline.

    uv run python bench/loop_lag.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Coroutine, Generator
from pathlib import Path
from typing import Any

import httpx
from harness import free_port, pct
from worst_inputs import trivial_input, worst_inputs

from tether.config import Settings
from tether.runtime import Runtime
from tether.server import build_app, make_runner, make_site

ADMIN = "tta_loop-lag-bench-token-0123456789"


class _Counted(Coroutine[Any, Any, Any]):
    """A task's coroutine that counts each time the loop resumes it."""

    def __init__(self, coro: Coroutine[Any, Any, Any], steps: TaskSteps) -> None:
        self._coro = coro
        self._steps = steps

    def send(self, value: Any) -> Any:
        self._steps.steps += 1
        return self._coro.send(value)

    def throw(self, *args: Any) -> Any:
        self._steps.steps += 1
        return self._coro.throw(*args)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._coro.__await__()


class TaskSteps:
    """Steps of every task started after ``install`` (the server's: connections, the audit
    writer, the change feed): a request's count is how many loop turns it took, each one
    a wait behind whatever else the loop is running."""

    def __init__(self) -> None:
        self.steps = 0

    def install(self) -> None:
        def factory(
            loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
        ) -> asyncio.Task[Any]:
            return asyncio.Task(_Counted(coro, self), loop=loop, **kwargs)

        asyncio.get_running_loop().set_task_factory(factory)  # type: ignore[arg-type]

    def reset(self) -> int:
        steps, self.steps = self.steps, 0
        return steps


class LagProbe:
    """The worst lateness of a 1 ms sleep since the last ``reset``."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, (time.perf_counter() - started) * 1000 - 1)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def reset(self) -> float:
        worst, self.worst = self.worst, 0.0
        return worst


async def run(workdir: Path, rounds: int) -> None:
    port = free_port()
    settings = Settings(
        host="127.0.0.1", port=port, data_dir=workdir / "data",
        database_url=f"sqlite+aiosqlite:///{workdir}/lag.db", bootstrap_admin_token=ADMIN,
    )  # fmt: skip
    probe = LagProbe()
    probe.start()
    counter = TaskSteps()
    counter.install()
    runtime = await Runtime.start(settings)
    runner = make_runner(build_app(runtime), settings)
    await runner.setup()
    await make_site(runner, settings, "127.0.0.1", port).start()
    try:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            (
                await client.post("/admin/v1/projects", json={"name": "b"}, headers=admin)
            ).raise_for_status()
            made = await client.post(
                "/admin/v1/agents", json={"name": "lag", "project": "b"}, headers=admin
            )
            key = made.raise_for_status().json()["key"]
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            print(f"worst loop lag per request, {rounds} rounds (ms):")
            for name, (path, body) in (trivial_input() | worst_inputs()).items():
                lags, took = [], []
                for _ in range(rounds):
                    await asyncio.sleep(0.01)
                    probe.reset()
                    started = time.perf_counter()
                    answer = await client.post(path, content=body, headers=headers)
                    took.append((time.perf_counter() - started) * 1000)
                    lags.append(probe.reset())
                print(
                    f"  {name:<40} -> {answer.status_code}  lag P50 {pct(lags, 50):6.2f}"
                    f"  max {max(lags):6.2f}   answered P50 {pct(took, 50):6.2f}"
                )
            await kill_turns(client, key, rounds, counter)
    finally:
        await runner.cleanup()
        await runtime.stop()


async def kill_turns(client: httpx.AsyncClient, key: str, rounds: int, counter: TaskSteps) -> None:
    """What a kill of a live session costs on an idle loop: the server's task steps (loop
    turns) from the request to its answer, and the time it took."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    hook = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    turns, took = [], []
    for n in range(rounds):
        session = f"lag-kill-{n}"
        body = {"session_id": session, "hook_event_name": "SessionStart", "source": "startup"}
        (await client.post("/hooks/claude-code", json=body, headers=hook)).raise_for_status()
        await asyncio.sleep(0.05)
        counter.reset()
        started = time.perf_counter()
        killed = await client.post(f"/admin/v1/sessions/{session}/kill", headers=admin)
        took.append((time.perf_counter() - started) * 1000)
        turns.append(counter.reset())
        assert killed.status_code == 200, killed.text
    print(
        f"  {'kill of a live session':<40} -> 200  turns P50 {pct(turns, 50):6.0f}"
        f"  max {max(turns):6.0f}   answered P50 {pct(took, 50):6.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp), args.rounds))


if __name__ == "__main__":
    main()
