"""What `/metrics` reads at scrape time: the database's gauges (tasks per state, credit held
by unfinished tasks, webhook outbox depth) in one round trip, reused for a few seconds so
that several scrapers, or a fast one, cost the database one query per interval."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import sqlalchemy as sa
from prometheus_client import generate_latest

from ..lifecycle import ACTIVE, TaskStatus
from ..store.database import Database
from ..store.schema import tasks, webhook_outbox
from . import metrics

CACHE_SECONDS = 5.0
_OUTBOX = "__outbox__"  # the row of the union that carries the outbox depth


def _gauge_query() -> sa.CompoundSelect:
    held = sa.func.sum(sa.case((tasks.c.status.in_(ACTIVE), tasks.c.hold_micro), else_=0))
    per_state = sa.select(tasks.c.status, sa.func.count(), held).group_by(tasks.c.status)
    outbox = sa.select(sa.literal(_OUTBOX), sa.func.count(), sa.literal(0)).where(
        webhook_outbox.c.delivered_at.is_(None), webhook_outbox.c.gave_up_at.is_(None))
    return sa.union_all(per_state, outbox)


GAUGE_QUERY = _gauge_query()


class Scrape:
    def __init__(self, db: Database, publish: Callable[[], None] | None = None) -> None:
        self.db = db
        self.publish = publish  # the router's per-channel gauges, when this process routes
        self._fresh_until = 0.0
        self._lock = asyncio.Lock()

    async def render(self) -> bytes:
        """The Prometheus text exposition of this process's metrics."""
        await self._refresh()
        if self.publish is not None:
            self.publish()
        return generate_latest(metrics.REGISTRY)

    async def _refresh(self) -> None:
        if time.monotonic() < self._fresh_until:
            return
        async with self._lock:
            if time.monotonic() < self._fresh_until:
                return
            async with self.db.engine.connect() as conn:
                rows = (await conn.execute(GAUGE_QUERY)).all()
            counts = {status.value: 0 for status in TaskStatus}
            held = depth = 0
            for name, count, hold in rows:
                if name == _OUTBOX:
                    depth = count
                else:
                    counts[name] = count
                    held += int(hold or 0)
            for status, count in counts.items():
                metrics.tasks_in_state.labels(status).set(count)
            metrics.credits_held_now.set(held)
            metrics.webhook_outbox_depth.set(depth)
            self._fresh_until = time.monotonic() + CACHE_SECONDS
