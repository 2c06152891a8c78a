"""The periodic flush: a flush under way when its owner stops is let finish, so what it
wrote is noted once and not written again by the last flush."""

from __future__ import annotations

import asyncio

from tether.periodic import PeriodicFlush


def test_stopping_lets_a_flush_under_way_finish_before_the_last_one() -> None:
    async def scenario() -> list[str]:
        steps: list[str] = []
        writing = asyncio.Event()
        committed = asyncio.Event()

        async def flush() -> None:
            if not steps:
                steps.append("writing")
                writing.set()
                await committed.wait()
                steps.append("noted")
            else:
                steps.append("last")

        flusher = PeriodicFlush("test", flush, 0.01)
        flusher.start()
        await writing.wait()
        stopping = asyncio.create_task(flusher.stop())
        await asyncio.sleep(0.05)
        committed.set()
        await stopping
        return steps

    assert asyncio.run(scenario()) == ["writing", "noted", "last"]


def test_stopping_an_idle_flusher_flushes_once_more_without_waiting() -> None:
    async def scenario() -> tuple[int, float]:
        flushed = 0

        async def flush() -> None:
            nonlocal flushed
            flushed += 1

        flusher = PeriodicFlush("test", flush, 60)
        flusher.start()
        await asyncio.sleep(0)
        started = asyncio.get_running_loop().time()
        await flusher.stop()
        return flushed, asyncio.get_running_loop().time() - started

    flushed, took = asyncio.run(scenario())
    assert flushed == 1
    assert took < 1, "a sleeping flusher stops at once"
