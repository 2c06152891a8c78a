"""``tether_event_loop_lag_seconds`` and ``tether_gc_pause_seconds`` on ``GET /metrics``:
a loop held past its turn and the collector's pauses show there, so a latency tail can be
told from one request's slowness."""

from __future__ import annotations

import asyncio
import gc
import time

from tests.metrics.test_metrics import scrape, value
from tests.support.server import RunningTether


async def _hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # what a CPU-bound piece of work on the loop does to every request


def test_a_held_event_loop_shows_as_lag(tether: RunningTether) -> None:
    time.sleep(0.3)  # a few probes on an idle loop
    before = scrape(tether)
    assert value(before, "tether_event_loop_lag_seconds_count") >= 1
    held = value(before, "tether_event_loop_lag_seconds_count") - value(
        before, "tether_event_loop_lag_seconds_bucket", le="0.25"
    )
    asyncio.run_coroutine_threadsafe(_hold_the_loop(0.4), tether._loop).result(timeout=10)
    time.sleep(0.3)
    after = scrape(tether)
    late = value(after, "tether_event_loop_lag_seconds_count") - value(
        after, "tether_event_loop_lag_seconds_bucket", le="0.25"
    )
    assert late >= held + 1, "the 0.4 s hold is a probe woken over 0.25 s late"


def test_garbage_collections_are_counted_by_generation(tether: RunningTether) -> None:
    before = value(scrape(tether), "tether_gc_pause_seconds_count", generation="2")
    gc.collect()  # the server runs in this process: a full collection is one of its pauses
    time.sleep(0.3)
    after = scrape(tether)
    assert value(after, "tether_gc_pause_seconds_count", generation="2") >= before + 1
    assert value(after, "tether_gc_pause_seconds_sum", generation="2") > 0
