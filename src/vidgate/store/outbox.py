"""Queries of the webhook outbox: claim due deliveries under a lease, record outcomes.

All of them write, so all run through store/writes.py."""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa

from .schema import api_keys, webhook_outbox
from .writes import Writes


@dataclass(frozen=True)
class Delivery:
    id: str
    key_id: str
    task_id: str
    type: str
    url: str
    payload: str
    attempts: int
    secret: str | None


class Outbox:
    def __init__(self, writes: Writes) -> None:
        self.writes = writes

    async def claim_due(self, now: float, lease_until: float, limit: int) -> list[Delivery]:
        rows = await self.writes.run(
            lambda conn: _claim_due(conn, now=now, lease_until=lease_until, limit=limit))
        return [
            Delivery(r.id, r.key_id, r.task_id, r.type, r.url, r.payload, r.attempts,
                     r.webhook_secret)
            for r in rows
        ]

    async def delivered(self, event_id: str) -> None:
        await self._update(event_id, delivered_at=int(time.time()), lease_until=None,
                           attempts=webhook_outbox.c.attempts + 1, last_error=None)

    async def retry_later(self, event_id: str, at: float, error: str) -> None:
        await self._update(event_id, next_attempt_at=at, lease_until=None,
                           attempts=webhook_outbox.c.attempts + 1, last_error=error[:500])

    async def give_up(self, event_id: str, error: str) -> None:
        await self._update(event_id, gave_up_at=int(time.time()), lease_until=None,
                           attempts=webhook_outbox.c.attempts + 1, last_error=error[:500])

    async def _update(self, event_id: str, **values) -> None:
        stmt = webhook_outbox.update().where(webhook_outbox.c.id == event_id).values(**values)
        await self.writes.run(lambda conn: conn.execute(stmt).rowcount)


def _claim_due(conn: sa.Connection, *, now: float, lease_until: float, limit: int
               ) -> list[sa.Row]:
    """Lease up to `limit` due deliveries; their rows with their key's webhook secret."""
    lease_free = sa.or_(webhook_outbox.c.lease_until.is_(None),
                        webhook_outbox.c.lease_until < now)
    due = (
        sa.select(webhook_outbox.c.id)
        .where(
            webhook_outbox.c.delivered_at.is_(None),
            webhook_outbox.c.gave_up_at.is_(None),
            webhook_outbox.c.next_attempt_at <= now,
            lease_free,
        )
        .order_by(webhook_outbox.c.next_attempt_at)
        .limit(limit)
    )
    claimed: list[str] = []
    for (event_id,) in conn.execute(due).all():
        result = conn.execute(
            webhook_outbox.update()
            .where(webhook_outbox.c.id == event_id, lease_free)
            .values(lease_until=lease_until)
        )
        if result.rowcount:
            claimed.append(event_id)
    if not claimed:
        return []
    return list(conn.execute(
        sa.select(webhook_outbox, api_keys.c.webhook_secret)
        .select_from(webhook_outbox.join(api_keys, api_keys.c.id == webhook_outbox.c.key_id))
        .where(webhook_outbox.c.id.in_(claimed))
    ).all())
