"""Stopping in order (SIGTERM, Ctrl-C): nothing a call did may go unsettled or unrecorded.

1. stop accepting connections;
2. let calls in flight finish, for ``grace`` seconds at most;
3. cut what still runs: streams end with a ``shutting_down`` error (upstream closed), other
   waits are cancelled; each call settles on its way out, as a cut answer (``pricing.cut``);
4. close the connections left;
5. stop the runtime: settlements drain, leases are given back, then the audit log stops.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from tether.pipeline.action import Deny
from tether.runtime import Runtime

__all__ = ["CUT_SECONDS", "stop_in_order"]

log = logging.getLogger(__name__)

CUT_SECONDS = 5.0
"""After the cut, how long handlers have to settle on their way out."""


async def stop_in_order(runner: web.AppRunner, runtime: Runtime, grace: float) -> None:
    started = time.monotonic()
    for site in list(runner.sites):
        await site.stop()
    requests = runtime.requests
    if not await requests.wait(grace):
        verdict = Deny(
            "shutting_down",
            "tether: the control plane is stopping; this answer was cut. Retry the call.",
            {},
        )
        streams = runtime.inflight.cut_all(verdict)
        if not await requests.wait(1.0):
            requests.cancel_all()
            await requests.wait(CUT_SECONDS)
        log.warning(
            "tether: %d calls still running after %.0f s were cut (%d streams); %d did not end",
            streams + len(requests),
            grace,
            streams,
            len(requests),
        )
    await runner.cleanup()
    await runtime.stop()
    log.info("tether: stopped in %.1f s", time.monotonic() - started)
