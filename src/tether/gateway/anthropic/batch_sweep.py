"""Message batches a kill canceled, followed to the end by tether: the agent's session is
stopped, so it will not read the results that would settle the batch's budget hold.
A periodic sweep of the store (not a task per batch) finds them after a restart too, asks
upstream with the project's key (each batch backing off while it is still ending), and
settles each to what its requests finished before the cancel used (those are billed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from tether.budgets.batches import BatchReservations
from tether.errors import TetherError
from tether.gateway.anthropic.batch_settlement import (
    BatchSettlement,
    BatchTally,
    owner_identity,
    system_decision,
)
from tether.gateway.anthropic.upstream import AnthropicUpstream, request_headers
from tether.gateway.anthropic.wire import ANTHROPIC_VERSION, AnthropicWire
from tether.identity.directory import Directory
from tether.records.message_batches import BatchRecord
from tether.web.background import while_serving
from tether.web.lines import lines_of

__all__ = ["CanceledBatchSweep"]

log = logging.getLogger(__name__)

SWEEP_SECONDS = 1.0
FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 300.0


@dataclass(slots=True)
class _Follow:
    due: float
    delay: float


class CanceledBatchSweep:
    def __init__(
        self,
        reservations: BatchReservations,
        settlement: BatchSettlement,
        upstream: AnthropicUpstream,
        wire: AnthropicWire,
        directory: Directory,
        every: float = SWEEP_SECONDS,
    ) -> None:
        self._reservations = reservations
        self._settlement = settlement
        self._upstream = upstream
        self._wire = wire
        self._directory = directory
        self._every = every
        self._following: dict[str, _Follow] = {}

    def lifetime(self, _app: Any) -> AsyncIterator[None]:
        return while_serving("canceled message batches", self._forever)

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.sweep()
            except TetherError as exc:
                log.warning("canceled message batches not followed now: %s", exc.message)
            except Exception:
                log.exception("following canceled message batches failed")

    async def sweep(self) -> int:
        """Settle each canceled batch upstream has ended; the number settled."""
        now = asyncio.get_running_loop().time()
        batches = await self._reservations.canceled_unsettled()
        waiting = {b.id for b in batches}
        for gone in set(self._following) - waiting:
            del self._following[gone]
        settled = 0
        for batch in batches:
            follow = self._following.setdefault(batch.id, _Follow(now, FIRST_DELAY_SECONDS))
            if now < follow.due:
                continue
            try:
                done = await self._follow(batch)
            except TetherError as exc:
                log.warning("message batch %s not followed now: %s", batch.id, exc.message)
                done = False
            except (TimeoutError, aiohttp.ClientError) as exc:
                log.warning("message batch %s not followed now: %r", batch.id, exc)
                done = False
            if done:
                settled += 1
                self._following.pop(batch.id, None)
            else:
                follow.due = now + follow.delay
                follow.delay = min(follow.delay * 2, MAX_DELAY_SECONDS)
        return settled

    async def _follow(self, batch: BatchRecord) -> bool:
        """True once the batch is settled (by this sweep or anyone else)."""
        identity = owner_identity(batch, self._directory)
        if identity is None:
            log.error("message batch %s: its agent or project is gone; not settled", batch.id)
            return False
        base, api_key = await self._wire.upstream_of(identity.project)
        headers = request_headers({"anthropic-version": ANTHROPIC_VERSION}, api_key)
        url = f"{base}/v1/messages/batches/{batch.id}"
        answer = await self._upstream.get(url, headers)
        try:
            shape = orjson.loads(await answer.read()) if answer.status == 200 else None
        except orjson.JSONDecodeError:
            shape = None
        finally:
            answer.release()
        if not isinstance(shape, dict) or shape.get("processing_status") != "ended":
            return False
        tally = BatchTally()
        results = await self._upstream.get(f"{url}/results", headers)
        try:
            if results.status != 200:
                return False
            async for line in lines_of(results.content):
                tally.feed(line)
        finally:
            results.release()
        session = await self._reservations.session_of(batch)
        decision = system_decision(batch, identity, session)
        settled = await self._settlement.settle(
            batch.id, decision, tally, "settled by tether after a kill canceled it"
        )
        if settled is not None:
            log.info("message batch %s settled after its cancel", batch.id)
        return True
