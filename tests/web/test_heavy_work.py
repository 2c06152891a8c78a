"""The heavy-work lane: pieces past its width wait their turn instead of running at once,
and each still gets its own answer; through the hook endpoint, heavy commands sent
together are decided exactly as they are one at a time."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.gateway.claude_code.test_hooks import CWD, decision_of, hook  # noqa: F401 (fixture)
from tether.web.heavy_work import HEAVY_BODY_BYTES, HeavyWork


async def test_pieces_past_the_width_wait_and_are_each_answered() -> None:
    lane = HeavyWork(width=1)
    release = threading.Event()
    started: list[int] = []

    def piece(n: int) -> int:
        started.append(n)
        release.wait(10)
        return n * n

    try:
        running = [asyncio.create_task(lane.run(lambda n=n: piece(n))) for n in range(5)]
        for _ in range(200):
            if started:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert started == [0], "only one piece may run while the lane is one wide"
        assert lane.running == 1 and lane.waited == 4
        release.set()
        assert await asyncio.gather(*running) == [0, 1, 4, 9, 16]
        assert started == [0, 1, 2, 3, 4], "waiting pieces run in arrival order"
        assert lane.most_running == 1 and lane.running == 0
    finally:
        release.set()
        lane.close()


async def test_an_error_in_a_piece_is_its_callers_alone() -> None:
    lane = HeavyWork(width=2)

    def fails() -> int:
        raise ValueError("bad input")

    try:
        results = await asyncio.gather(
            lane.run(fails), lane.run(lambda: 1), lane.run(lambda: 2), return_exceptions=True
        )
        assert isinstance(results[0], ValueError) and results[1:] == [1, 2]
        assert lane.most_running <= 2
    finally:
        lane.close()


def test_a_lane_has_a_width() -> None:
    with pytest.raises(ValueError):
        HeavyWork(width=0)


def test_heavy_commands_sent_together_are_decided_as_one_at_a_time(hook) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    reads = " ".join(f"{CWD}/src/module_{j}.py" for j in range(40))  # past the threshold
    commands = [f"cat {reads} | grep -n x{i} | wc -l" for i in range(6)]
    commands += [f"cat {reads} && rm -rf /etc/conf{i}" for i in range(6)]
    assert all(len(c) > HEAVY_BODY_BYTES for c in commands)

    def send(i: int) -> tuple[str, str]:
        answer: httpx.Response = hook("Bash", {"command": commands[i]}, tool_use_id=f"toolu_{i}")
        return decision_of(answer)

    with ThreadPoolExecutor(len(commands)) as pool:
        together = list(pool.map(send, range(len(commands))))
    assert [d for d, _ in together] == ["allow"] * 6 + ["deny"] * 6, together
    for i, (_, reason) in enumerate(together[6:]):
        assert f"file:Delete on /etc/conf{i} " in reason, reason
