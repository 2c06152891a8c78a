"""The heavy-work lane: pieces run in a worker process, those past its width wait their
turn and each still gets its own answer, those past its queue are refused, a dead worker
costs only its piece; through the hook endpoint, heavy commands sent together are decided
exactly as they are one at a time, and ``/healthz`` answers while a heavy body is read."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

from tests.e2e.test_tether_up import start
from tests.gateway.claude_code.test_hooks import (  # noqa: F401 (fixture)
    CWD,
    POLICY,
    decision_of,
    hook,
    payload,
)
from tests.support.processes import children, command, kill_if_alive, wait_until_gone
from tests.support.raw_http import healthz_while_answered, read_answer
from tests.support.server import RunningTether, free_port
from tests.web.heavy_pieces import fails, gated_square, pid, square
from tether.web.heavy_work import HEAVY_BODY_BYTES, HeavyWork, HeavyWorkBusy, estimated_seconds
from tether.web.shared_lane import HEAVY_WORK_KEY

MB = 1_000_000


def _started(gate: Path) -> list[int]:
    path = gate / "started"
    return [int(n) for n in path.read_text().split()] if path.exists() else []


async def _until(condition: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_pieces_run_in_another_process() -> None:
    lane = HeavyWork()
    try:
        assert await lane.warm()
        assert await lane.run(pid) != os.getpid()
    finally:
        lane.close()


async def test_pieces_past_the_width_wait_and_are_each_answered(tmp_path: Path) -> None:
    lane = HeavyWork(width=1)
    try:
        running = [asyncio.create_task(lane.run(gated_square, n, str(tmp_path))) for n in range(5)]
        await _until(lambda: _started(tmp_path))
        await asyncio.sleep(0.1)
        assert _started(tmp_path) == [0], "only one piece may run while the lane is one wide"
        assert lane.running == 1 and lane.waited == 4 and lane.waiting == 4
        (tmp_path / "release").touch()
        assert await asyncio.gather(*running) == [0, 1, 4, 9, 16]
        assert _started(tmp_path) == [0, 1, 2, 3, 4], "waiting pieces run in arrival order"
        assert lane.most_running == 1 and lane.running == 0 and lane.waiting == 0
    finally:
        (tmp_path / "release").touch()
        lane.close()


async def test_pieces_past_the_queue_are_refused(tmp_path: Path) -> None:
    lane = HeavyWork(width=1, queue=1)
    try:
        first = asyncio.create_task(lane.run(gated_square, 1, str(tmp_path)))
        await _until(lambda: _started(tmp_path))
        second = asyncio.create_task(lane.run(gated_square, 2, str(tmp_path)))
        await asyncio.sleep(0)
        with pytest.raises(HeavyWorkBusy) as refused:
            await lane.run(square, 3)
        assert refused.value.code == "heavy_work_busy" and refused.value.status == 503
        assert lane.refused == 1
        (tmp_path / "release").touch()
        assert await asyncio.gather(first, second) == [1, 4]
        assert await lane.run(square, 3) == 9, "once the queue drains, pieces are taken again"
    finally:
        (tmp_path / "release").touch()
        lane.close()


async def test_the_queue_is_bounded_by_the_work_waiting_not_by_a_count(tmp_path: Path) -> None:
    """Hundreds of ordinary hook bodies (4 KB) may wait behind a slow piece; large ones
    (1 MB, counted as 100 ms each) only as many as fit in the wait budget."""
    lane = HeavyWork(width=1)
    try:
        first = asyncio.create_task(lane.run(gated_square, 1, str(tmp_path)))
        await _until(lambda: _started(tmp_path))
        small = [asyncio.create_task(lane.run(square, n, size=4_096)) for n in range(600)]
        await asyncio.sleep(0)
        assert lane.refused == 0 and lane.waiting == 600
        fitting = int((lane.wait_budget_seconds - lane.waiting_seconds) // estimated_seconds(MB))
        large = [asyncio.create_task(lane.run(square, n, size=MB)) for n in range(fitting)]
        await asyncio.sleep(0)
        assert lane.refused == 0
        with pytest.raises(HeavyWorkBusy) as refused:
            await lane.run(square, 0, size=MB)
        assert "of work waiting" in refused.value.message
        assert lane.refused == 1
        (tmp_path / "release").touch()
        assert await asyncio.gather(*small) == [n * n for n in range(600)]
        assert await asyncio.gather(*large) == [n * n for n in range(fitting)]
        assert await first == 1
        assert lane.waiting == 0 and lane.waiting_seconds == 0
    finally:
        (tmp_path / "release").touch()
        lane.close()


async def test_an_error_in_a_piece_is_its_callers_alone() -> None:
    lane = HeavyWork(width=2)
    try:
        results = await asyncio.gather(
            lane.run(fails, "bad input"), lane.run(square, 1), lane.run(square, 2),
            return_exceptions=True,
        )  # fmt: skip
        assert isinstance(results[0], ValueError) and results[1:] == [1, 4]
        assert lane.most_running <= 2
    finally:
        lane.close()


async def test_a_dead_worker_costs_only_its_piece() -> None:
    lane = HeavyWork()
    try:
        with pytest.raises(HeavyWorkBusy):
            await lane.run(os._exit, 1)
        assert await lane.run(square, 7) == 49
    finally:
        lane.close()


async def test_a_closed_lane_refuses() -> None:
    lane = HeavyWork()
    lane.close()
    with pytest.raises(HeavyWorkBusy):
        await lane.run(square, 2)


def test_a_lane_has_a_width_and_a_queue() -> None:
    with pytest.raises(ValueError):
        HeavyWork(width=0)
    with pytest.raises(ValueError):
        HeavyWork(queue=-1)


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


def test_a_fleets_burst_of_ordinary_hook_bodies_is_decided_not_refused(hook) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """150 PreToolUse calls at once, each a 3 KB Write (past the threshold, so each is read
    in the one-wide lane): every one is decided; none is refused as busy."""
    content = "print('hello')\n" * 200

    def send(i: int) -> tuple[str, str]:
        write = {"file_path": f"{CWD}/src/gen_{i}.py", "content": content}
        return decision_of(hook("Write", write, tool_use_id=f"toolu_w{i}"))

    with ThreadPoolExecutor(150) as pool:
        decisions = list(pool.map(send, range(150)))
    assert [d for d, _ in decisions] == ["allow"] * 150, [r for d, r in decisions if d != "allow"]


def test_a_large_body_is_read_as_a_small_one_is(hook) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The same call, under and over the threshold: the same decision, and the same
    refusal for the same mistake."""
    padding = {"description": "x" * (HEAVY_BODY_BYTES + 100)}
    for extra in ({}, padding):
        assert decision_of(hook("Bash", {"command": "make test"} | extra))[0] == "allow"
        decision, reason = decision_of(hook("Bash", {"command": "rm -rf /etc/x"} | extra))
        assert decision == "deny" and "file:Delete on /etc/x" in reason, reason
        missing = hook("Bash", {"not_a_command": "x"} | extra)
        assert missing.status_code == 400, missing.text
        assert missing.json()["error"]["code"] == "invalid_request"
    bad = hook("Bash", {"command": "ls"}, hook_event_name=None)
    assert bad.status_code == 400


def test_healthz_answers_while_heavy_hook_bodies_are_read(tether: RunningTether) -> None:
    """Four near-1 MB bodies of small JSON objects (the costliest JSON to parse: tens of
    ms each) sent whole; while none of their answers has arrived yet, ``/healthz`` is
    asked again and again. It must be answered while they are in flight: read on the
    event loop, their parsing would hold every other request until all were read."""
    tether.create_project("p", policy=POLICY)
    key = tether.create_agent("claude-dev", "p")
    items = [{"k": n % 10} for n in range(120_000)]
    body = orjson.dumps(payload("Bash", {"command": "make test", "items": items}))
    assert 900_000 < len(body) < tether.settings.max_body_bytes
    answered_in_flight, heavy = healthz_while_answered(tether.url, "/hooks/claude-code", key, body)
    answers = [read_answer(conn) for conn in heavy]
    for answer in answers:
        head, _, content = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert orjson.loads(content)["hookSpecificOutput"]["permissionDecision"] == "allow"
    assert answered_in_flight >= 5, (
        f"/healthz answered {answered_in_flight} times while the heavy bodies were read"
    )


def test_a_full_lane_refuses_the_hook_call_and_stops_the_turn(  # type: ignore[no-untyped-def]
    tether: RunningTether,
    hook,  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    """Answered 200 (a non-2xx hook answer lets the tool run) with ``continue: false`` and
    ``decision: block``: the call is neither read on the loop nor let through."""
    full = tether._runner.app[HEAVY_WORK_KEY]
    full.queue = 0
    try:
        busy = asyncio.run_coroutine_threadsafe(
            full.run(gated_square, 1, str(tmp_path)), tether._loop
        )
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists():
            assert time.monotonic() < deadline, "the gated piece never started"
            time.sleep(0.01)
        answer = hook("Bash", {"command": "make test", "pad": "x" * HEAVY_BODY_BYTES})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["continue"] is False and body["decision"] == "block", body
        assert body["error"]["code"] == "heavy_work_busy", body
        assert decision_of(hook("Bash", {"command": "make test"}))[0] == "allow", "small: read"
        (tmp_path / "release").touch()
        assert busy.result(timeout=30) == 1
    finally:
        (tmp_path / "release").touch()


def test_a_killed_servers_worker_and_wal_sync_helper_leave_with_it(tmp_path: Path) -> None:
    """``tether up`` killed outright (out of memory, a supervisor's SIGKILL) leaves no
    worker behind holding memory and the server's output open, nor its SQLite WAL sync
    helper (which ignores the signals sent to the process group, and ends with its pipe)."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
        "TETHER_DATA_DIR": str(tmp_path / "data"),
        "TETHER_URL": f"http://127.0.0.1:{port}",
    }
    process, _ = start(env, port)
    stdout = process.stdout
    assert stdout is not None
    reader = threading.Thread(target=stdout.read)
    reader.start()
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not (workers := [p for p in children(process.pid) if "spawn_main" in command(p)]):
            assert time.monotonic() < deadline, "the heavy-work lane never started its worker"
            time.sleep(0.1)
        while not (helpers := [p for p in children(process.pid) if "wal_sync" in command(p)]):
            assert time.monotonic() < deadline, "no WAL sync helper was started"
            time.sleep(0.1)
        assert len(helpers) == 1, [command(p) for p in children(process.pid)]
        workers += helpers
        process.kill()
        process.wait()
        wait_until_gone(workers, 15, "their server")
        reader.join(15)
        assert not reader.is_alive(), "something still holds the server's output open"
    finally:
        process.kill()
        process.wait()
        for pid in workers:
            kill_if_alive(pid, "multiprocessing")
        reader.join(15)
        stdout.close()
