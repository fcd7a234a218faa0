"""Every write of a process goes one way (store/writes.py): on an SQLite file, through the
thread that writes new tasks, so the engine's and the callbacks' writes never meet the
creates on SQLite's write lock; elsewhere in a transaction of its own. Runs on the suite's
database (VIDGATE_TEST_DB)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest
import sqlalchemy as sa

from support import TEST_DB, make_task
from vidgate.domain import COMPLETED, QUEUED
from vidgate.store.database import Database, is_unreachable
from vidgate.store.schema import tasks

HOLD = 10


def _pooled_writes(db: Database) -> list[str]:
    """Statements other than reads that SQLAlchemy's pooled connections run from now on."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().split(None, 1)[0].upper() not in ("SELECT", "PRAGMA"):
            seen.append(statement)

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    return seen


async def test_engine_callback_and_create_writes_interleave(db):
    """Creates, callbacks' make_due, claims, renewals, hand-backs, endings and deletes, all
    at once: every one completes with its right outcome, the money adds up, and on an SQLite
    file none of them wrote through the pooled connection (before the one writer, all but
    the creates did, and met the create thread on SQLite's write lock: pool timeouts and
    completion lags of minutes at 10,000 tasks, bench/RESULTS.md)."""
    key, _ = await db.create_key("w", balance_micro=100_000)
    seeded = [make_task(key.id, hold=HOLD) for _ in range(60)]
    for task in seeded:
        assert (await db.tasks.insert(task))[1]
    pooled = _pooled_writes(db)
    now = 1e9  # every seeded task is due; leases run to `far`
    far = 4e9
    held = await db.leases.claim_due("w_a", 2e9, far, 100)
    assert {t.id for t in held} == {t.id for t in seeded}
    as_claimed = {t.id: t.next_poll_at for t in held}
    finishing, releasing = seeded[:30], seeded[30:]
    deleting = releasing[:10]
    fresh = [make_task(key.id, hold=HOLD) for _ in range(200)]

    async def claims_by_b() -> list[str]:
        got: list[str] = []
        for _ in range(10):
            got += [t.id for t in await db.leases.claim_due("w_b", 3e9, far, 20)]
            await asyncio.sleep(0)
        return got

    results = await asyncio.gather(
        asyncio.gather(*(db.tasks.insert(t) for t in fresh)),
        asyncio.gather(*(db.leases.make_due(t.id, "chan") for t in releasing)),
        asyncio.gather(*(db.leases.finish_leased(t.id, "w_a", COMPLETED, charge_micro=4,
                                                 progress=100) for t in finishing)),
        db.leases.release_many("w_a", {t.id: {"next_poll_at": now, "status": QUEUED,
                                              "progress": 5, "status_updated_at": 1,
                                              "claimed_next_poll_at": as_claimed[t.id]}
                                       for t in releasing}),
        db.leases.renew("w_a", [t.id for t in seeded], far),
        asyncio.gather(*(db.tasks.mark_deleted(t.id, key.id) for t in deleting)),
        claims_by_b(),
    )
    created, due, finished, _released, lost, deleted, claimed_by_b = results
    assert all(was_created for _task, was_created in created)
    assert all(due) and all(finished) and all(deleted)
    assert lost <= {t.id for t in releasing}  # only a hand-back can have taken a lease
    assert len(claimed_by_b) == len(set(claimed_by_b))  # a task is claimed once
    # w_b took fresh tasks and released ones (due at once: the callback's time wins),
    # never one w_a still held
    assert not set(claimed_by_b) & {t.id for t in finishing}

    async with db.engine.connect() as conn:
        rows = {r.id: r for r in (await conn.execute(sa.select(tasks))).all()}
    assert len(rows) == 260
    assert all(rows[t.id].status == COMPLETED and rows[t.id].cost_micro == 4
               for t in finishing)
    assert all(rows[t.id].deleted_at is not None for t in deleting)
    assert all(rows[t.id].next_poll_at == 0.0 or rows[t.id].lease_owner == "w_b"
               for t in releasing[10:])  # not deleted: a delete makes it due at its time
    # 260 holds taken, 30 endings keep 4 of their 10 and return 6
    balance = 100_000 - 260 * HOLD + 30 * (HOLD - 4)
    assert (await db.get_key(key.id)).balance_micro == balance
    assert await db.keys.ledger_sum(key.id) == balance
    if TEST_DB == "sqlite":  # the suite's SQLite is a file: one thread wrote all of it
        assert pooled == []


async def test_a_failed_write_undoes_only_itself(db):
    key, _ = await db.create_key("w")
    ids = []
    for _ in range(8):
        task = make_task(key.id)
        await db.tasks.insert(task)
        ids.append(task.id)

    def write(task_id: str, fail: bool):
        def run(conn: sa.Connection) -> str:
            conn.execute(tasks.update().where(tasks.c.id == task_id).values(progress=50))
            if fail:
                raise ValueError(task_id)
            return threading.current_thread().name
        return db.writes.run(run)

    outcomes = await asyncio.gather(*(write(i, n % 2 == 1) for n, i in enumerate(ids)),
                                    return_exceptions=True)
    for n, outcome in enumerate(outcomes):
        if n % 2:
            assert isinstance(outcome, ValueError) and str(outcome) == ids[n]
        elif TEST_DB == "sqlite":  # an SQLite file: the one writer ran it
            assert outcome == "vidgate-sqlite-writer"
    async with db.engine.connect() as conn:
        progress = dict((await conn.execute(
            sa.select(tasks.c.id, tasks.c.progress))).all())
    assert [progress[i] for i in ids] == [50, 0] * 4


async def test_a_database_locked_elsewhere_is_unreachable_then_recovers(db):
    """Another process holding SQLite's write lock past the busy timeout: every write of this
    process fails as the database being out of reach (the API's 503, the engine's retry),
    having written nothing, and the next write after the lock is let go succeeds."""
    if TEST_DB != "sqlite":
        pytest.skip("SQLite's write lock: runs with VIDGATE_TEST_DB=sqlite")
    key, _ = await db.create_key("w")
    task = make_task(key.id)
    await db.tasks.insert(task)
    db._writer.close()  # started by the writes above: let it reconnect with a short wait
    db._writer.busy_timeout = 0.2
    other = sqlite3.connect(db._writer.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        failed = await asyncio.gather(db.leases.make_due(task.id, "chan"),
                                      db.tasks.insert(make_task(key.id)),
                                      db.leases.claim_due("w_a", 2e9, 4e9, 10),
                                      return_exceptions=True)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert all(isinstance(e, Exception) and is_unreachable(e) for e in failed), failed
    async with db.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(tasks))).scalar() == 1
    assert await db.leases.make_due(task.id, "chan")
    assert [t.id for t in await db.leases.claim_due("w_a", 2e9, 4e9, 10)] == [task.id]
