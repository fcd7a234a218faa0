"""One engine writes many of its leased rows at once in two places, the heartbeat's renewal
and the batched hand-back; on PostgreSQL both must take the rows' locks in one order (id
order), or the two transactions deadlock. Seen at 100,000 in flight (bench/RESULTS.md), where
the renewal's `WHERE id IN (...)` read the table in its stored order."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import sqlalchemy as sa
from sqlalchemy import event

from support import needs_postgresql
from vidgate.domain import QUEUED, Task, new_task_id
from vidgate.store.pg_direct import asyncpg_dsn
from vidgate.store.schema import tasks

WORKER = "engine-1"


async def _stored(db, owner: str, task_id: str) -> None:
    now = time.time()
    await db.tasks.insert(Task(
        id=task_id, owner_id=owner, family="videos", model="sora-2", prompt="p",
        width=320, height=180, seconds=4, seed=0, status=QUEUED, progress=0,
        created_at=int(now), status_updated_at=int(now), deadline_at=now + 600,
        next_poll_at=now))


async def test_renewal_locks_in_id_order_so_a_hand_back_never_deadlocks_it(db, database_url):
    needs_postgresql("row locks")
    base = new_task_id()
    low, high = base + "a", base + "b"
    key, _ = await db.create_key("locks")
    await _stored(db, key.id, high)  # stored first: a plan that reads the table meets it first
    await _stored(db, key.id, low)
    now = time.time()
    claimed = await db.leases.claim_due(WORKER, now, now + 60, 10)
    assert {t.id for t in claimed} == {low, high}

    # the renewal's transactions read the table in its stored order, as a large table's
    # plan may (a bitmap heap scan), whatever this two-row table's plan would be
    @event.listens_for(db.engine.sync_engine, "begin")
    def table_order(conn):
        conn.exec_driver_sql("SET LOCAL enable_indexscan = off")
        conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")

    # the hand-back's transaction, writing in id order: the low row first ...
    hand_back = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        transaction = hand_back.transaction()
        await transaction.start()
        await hand_back.execute("UPDATE tasks SET progress = 1 WHERE id = $1", low)
        renewal = asyncio.create_task(db.leases.renew(WORKER, [high, low], now + 120))
        await asyncio.sleep(0.5)  # the renewal now waits for the low row
        assert not renewal.done()
        # ... then the high one: a renewal that took the high row's lock first makes this
        # a deadlock, and PostgreSQL aborts one of the two
        await hand_back.execute("UPDATE tasks SET progress = 1 WHERE id = $1", high)
        await transaction.commit()
        assert await asyncio.wait_for(renewal, 10) == set()  # both leases held and extended
    finally:
        await hand_back.close()
        event.remove(db.engine.sync_engine, "begin", table_order)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(tasks.c.lease_until)
                                   .where(tasks.c.id.in_([low, high])))).all()
    assert [r.lease_until for r in rows] == [now + 120] * 2
