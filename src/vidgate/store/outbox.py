"""Queries of the webhook outbox: claim due deliveries under a lease, record outcomes."""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from .schema import api_keys, webhook_outbox


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
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def claim_due(self, now: float, lease_until: float, limit: int) -> list[Delivery]:
        due = (
            sa.select(webhook_outbox.c.id)
            .where(
                webhook_outbox.c.delivered_at.is_(None),
                webhook_outbox.c.gave_up_at.is_(None),
                webhook_outbox.c.next_attempt_at <= now,
                sa.or_(webhook_outbox.c.lease_until.is_(None),
                       webhook_outbox.c.lease_until < now),
            )
            .order_by(webhook_outbox.c.next_attempt_at)
            .limit(limit)
        )
        claimed: list[str] = []
        async with self.engine.begin() as conn:
            for (event_id,) in (await conn.execute(due)).all():
                result = await conn.execute(
                    webhook_outbox.update()
                    .where(
                        webhook_outbox.c.id == event_id,
                        sa.or_(webhook_outbox.c.lease_until.is_(None),
                               webhook_outbox.c.lease_until < now),
                    )
                    .values(lease_until=lease_until)
                )
                if result.rowcount:
                    claimed.append(event_id)
            if not claimed:
                return []
            rows = (
                await conn.execute(
                    sa.select(webhook_outbox, api_keys.c.webhook_secret)
                    .select_from(webhook_outbox.join(
                        api_keys, api_keys.c.id == webhook_outbox.c.key_id))
                    .where(webhook_outbox.c.id.in_(claimed))
                )
            ).all()
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
        async with self.engine.begin() as conn:
            await conn.execute(
                webhook_outbox.update().where(webhook_outbox.c.id == event_id).values(**values)
            )
