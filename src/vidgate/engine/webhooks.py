"""Delivering webhook events from the durable outbox, signed with Standard Webhooks.

Each delivery runs on its own with its own timeout, so a dead or slow endpoint only delays its
own events. Failed deliveries back off exponentially; the event id stays the same on every
attempt (`webhook-id`), so receivers can drop duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from datetime import UTC, datetime

import aiohttp
from standardwebhooks import Webhook

from ..observability import metrics
from ..store.outbox import Delivery, Outbox
from .loop import Loop

log = logging.getLogger("vidgate.webhooks")
MAX_BACKOFF = 3600.0


class WebhookSender:
    def __init__(
        self,
        outbox: Outbox,
        *,
        timeout: float = 10.0,
        max_attempts: int = 12,
        backoff_seconds: float = 5.0,
        concurrency: int = 32,
        tick_seconds: float = 0.5,
    ) -> None:
        self.outbox = outbox
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff_seconds
        self.concurrency = concurrency
        self._inflight: set[asyncio.Task] = set()
        self._loop = Loop(self._claim_and_send, tick_seconds, log, "webhook claim failed")
        self._client: aiohttp.ClientSession | None = None

    def stop(self) -> None:
        self._loop.stop()

    async def run(self) -> None:
        # trust_env: proxies from the environment apply to webhooks, as they always have
        self._client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout), trust_env=True)
        try:
            await self._loop.run()
        finally:
            for job in list(self._inflight):
                job.cancel()
            await asyncio.gather(*self._inflight, return_exceptions=True)
            await self._client.close()

    async def _claim_and_send(self) -> None:
        room = self.concurrency - len(self._inflight)
        if room <= 0:
            return
        now = time.time()
        # the lease outlives one attempt, so no other sender takes an event being delivered
        for delivery in await self.outbox.claim_due(now, now + self.timeout + 30, room):
            job = asyncio.create_task(self._deliver(delivery))
            self._inflight.add(job)
            job.add_done_callback(self._inflight.discard)

    async def _deliver(self, delivery: Delivery) -> None:
        error = None
        try:
            async with self._client.post(
                delivery.url, data=delivery.payload.encode(),
                headers=signed_headers(delivery), allow_redirects=False,
            ) as response:
                status = response.status
            if 200 <= status < 300:
                await self.outbox.delivered(delivery.id)
                metrics.webhook_deliveries.labels("delivered").inc()
                return
            error = f"HTTP {status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempts = delivery.attempts + 1
        with contextlib.suppress(Exception):
            if attempts >= self.max_attempts:
                log.warning("giving up on webhook %s after %d attempts: %s",
                            delivery.id, attempts, error)
                await self.outbox.give_up(delivery.id, error)
                metrics.webhook_deliveries.labels("gave_up").inc()
            else:
                delay = min(MAX_BACKOFF, self.backoff * 2 ** (attempts - 1))
                delay *= random.uniform(0.8, 1.2)
                await self.outbox.retry_later(delivery.id, time.time() + delay, error)
                metrics.webhook_deliveries.labels("retry").inc()


def signed_headers(delivery: Delivery) -> dict[str, str]:
    """Standard Webhooks headers, signed at send time so the timestamp is always fresh."""
    now = datetime.now(tz=UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery.id,
        "webhook-timestamp": str(int(now.timestamp())),
        "user-agent": "vidgate-webhooks",
    }
    if delivery.secret:
        headers["webhook-signature"] = Webhook(delivery.secret).sign(
            delivery.id, now, delivery.payload)
    return headers
