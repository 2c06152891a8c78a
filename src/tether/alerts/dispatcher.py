"""Delivers the outbox: due items are claimed, posted, and marked delivered, retried with
jittered exponential backoff (2 s doubling, at most 5 minutes) while the receiver fails, or
given up (dead letter) when the receiver refuses them for good (a 4xx other than 408/429)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from urllib.parse import urlsplit

import aiohttp

from tether.alerts.crossings import BudgetAlerts
from tether.alerts.render import generic_request, slack_request
from tether.errors import TetherError
from tether.store.alerts import AlertStore, OutboxItem
from tether.store.webhooks import WebhookStore

__all__ = ["OutboxDispatcher", "backoff_ms", "refused_for_good"]

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
TIMEOUT = aiohttp.ClientTimeout(total=10)


RETRYABLE_CLIENT_ERRORS = frozenset({408, 429})


def backoff_ms(attempts: int, base_ms: int = 2_000) -> int:
    """Half the doubling delay plus a random part of the other half, so the deliveries of
    many replicas or webhooks that failed together do not retry together."""
    ceiling = int(min(base_ms * 2**attempts, 300_000))
    return ceiling // 2 + random.randint(0, ceiling // 2)


def refused_for_good(status: int) -> bool:
    return 400 <= status < 500 and status not in RETRYABLE_CLIENT_ERRORS


class OutboxDispatcher:
    def __init__(
        self,
        store: AlertStore,
        webhooks: WebhookStore,
        alerts: BudgetAlerts,
        retry_base_ms: int = 2_000,
        poll_seconds: float = POLL_SECONDS,
        public_url: str | None = None,
    ) -> None:
        self._retry_base_ms = retry_base_ms
        self._public_url = public_url
        self._store = store
        self._webhooks = webhooks
        self._alerts = alerts
        self._poll = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        self._task = asyncio.create_task(self._run(), name="outbox-dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._alerts.wake.wait()
            self._alerts.wake.clear()
            in_hand: list[str] = []
            try:
                items = await self._store.claim_due()
                in_hand = [item.id for item in items]
                for item in items:
                    await self._deliver(item)
                    in_hand.remove(item.id)
            except asyncio.CancelledError:
                await self._release(in_hand)
                raise
            except TetherError as exc:
                log.warning("outbox paused: %s", exc.message)
            except Exception:
                log.exception("outbox dispatcher failed")

    async def _release(self, item_ids: list[str]) -> None:
        """Stopping: give back what this process claimed but did not finish, so the next
        process (a restart, another replica) sends it now rather than when the claim lapses."""
        if item_ids:
            with contextlib.suppress(TetherError):
                await self._store.release(item_ids)

    async def _deliver(self, item: OutboxItem) -> None:
        assert self._session is not None
        found = await self._webhooks.get(item.webhook_id)
        if found is None:
            await self._store.dead(item, "webhook deleted")
            return
        webhook, secret = found
        if webhook.kind == "slack":
            body, headers = slack_request(item.event, item.payload, item.id, self._public_url)
        else:
            body, headers = generic_request(item.payload, item.id, secret, self._public_url)
        try:
            async with self._session.post(
                webhook.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    await self._store.delivered(item.id)
                    return
                error = f"HTTP {response.status}"
                if refused_for_good(response.status):
                    log.warning(
                        "alert %s to webhook %s refused (%s); not retried",
                        item.id,
                        webhook.id,
                        error,
                    )
                    await self._store.dead(item, error)
                    return
        except (TimeoutError, aiohttp.ClientError) as exc:
            # The exception's text may hold the URL, whose path is the webhook's secret.
            error = f"{type(exc).__name__} reaching {urlsplit(webhook.url).hostname}"
        log.warning("alert %s to webhook %s failed (%s); retrying", item.id, webhook.id, error)
        await self._store.failed(item, error, backoff_ms(item.attempts, self._retry_base_ms))
