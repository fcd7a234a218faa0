"""Creates written by several writers (pg_writes): each key's creates on one writer, in
order and within its limits; different keys' batches in flight at once, a refusal in one
leaving the other alone. The limit test runs on the suite's database (VIDGATE_TEST_DB), the
others need PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import sqlalchemy as sa

from support import await_for, make_task, needs_postgresql
from vidgate.store.admission import ConcurrencyLimitReached
from vidgate.store.database import Database
from vidgate.store.ledger import InsufficientBalance
from vidgate.store.pg_direct import asyncpg_dsn
from vidgate.store.schema import tasks
from vidgate.store.wakeups import CHANNEL


async def keys_on_two_writers(db: Database, **settings) -> tuple:
    """Two keys whose creates go to different writers."""
    first, _ = await db.create_key("first", **settings)
    for n in range(100):
        other, _ = await db.create_key(f"other {n}", **settings)
        if db._writer.writer_of(other.id) != db._writer.writer_of(first.id):
            return first, other
    raise AssertionError("no two keys on different writers")


async def task_ids(db: Database, owner: str) -> set[str]:
    async with db.engine.connect() as conn:
        return set((await conn.execute(
            sa.select(tasks.c.id).where(tasks.c.owner_id == owner))).scalars())


async def test_a_limited_key_gets_exactly_its_limit_in_order(db):
    """Twenty creates at once for a key with max_concurrent=3: the first three are written,
    the other seventeen refused with nothing written, and another key's creates, waiting at
    the same time, are all written."""
    key, _ = await db.create_key("limited", max_concurrent=3)
    free, _ = await db.create_key("free")
    limited = [make_task(key.id) for _ in range(20)]
    others = [make_task(free.id) for _ in range(20)]
    outcomes = await asyncio.gather(*(db.tasks.insert(t, max_concurrent=3) for t in limited),
                                    *(db.tasks.insert(t) for t in others),
                                    return_exceptions=True)
    assert outcomes[:3] == [(t, True) for t in limited[:3]]
    assert all(isinstance(o, ConcurrencyLimitReached) for o in outcomes[3:20]), outcomes
    assert outcomes[20:] == [(t, True) for t in others]
    assert await task_ids(db, key.id) == {t.id for t in limited[:3]}
    assert await task_ids(db, free.id) == {t.id for t in others}


async def test_two_keys_batches_are_in_flight_at_once(db, database_url):
    """While one key's create waits for its key row (locked here from outside), another
    key's create is written and answered: the two go to different writers and the second
    does not wait behind the first's transaction. One writer for both kept the second
    waiting until the lock was let go."""
    needs_postgresql("PostgreSQL's writers")
    blocked, free = await keys_on_two_writers(db)
    outside = await asyncpg.connect(asyncpg_dsn(database_url))
    watching = await asyncpg.connect(asyncpg_dsn(database_url))  # outside a transaction
    try:
        locking = outside.transaction()
        await locking.start()
        await outside.execute("SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE", blocked.id)
        waiting = asyncio.create_task(db.tasks.insert(make_task(blocked.id)))

        async def on_the_lock() -> bool:
            return bool(await watching.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"))

        await await_for(on_the_lock, timeout=30, what="the first create to wait for the lock")
        task = make_task(free.id)
        assert await asyncio.wait_for(db.tasks.insert(task), timeout=20) == (task, True)
        assert not waiting.done()
        await locking.rollback()
        assert (await asyncio.wait_for(waiting, timeout=20))[1] is True
    finally:
        await outside.close()
        await watching.close()
    assert len(await task_ids(db, blocked.id)) == 1 and len(await task_ids(db, free.id)) == 1


async def test_a_refusal_on_one_writer_leaves_the_others_batch_alone(db):
    """Two keys on two writers, five creates each at once: the key that can pay two holds
    gets two written and three refused (balance and ledger agree), the other all five."""
    needs_postgresql("PostgreSQL's writers")
    short, rich = await keys_on_two_writers(db, balance_micro=2)
    await db.keys.top_up(rich.id, 98)
    shorts = [make_task(short.id, hold=1) for _ in range(5)]
    riches = [make_task(rich.id, hold=1) for _ in range(5)]
    outcomes = await asyncio.gather(*(db.tasks.insert(t) for t in (*shorts, *riches)),
                                    return_exceptions=True)
    assert outcomes[:2] == [(t, True) for t in shorts[:2]]
    assert all(isinstance(o, InsufficientBalance) for o in outcomes[2:5]), outcomes
    assert outcomes[5:] == [(t, True) for t in riches]
    assert await task_ids(db, short.id) == {t.id for t in shorts[:2]}
    assert await task_ids(db, rich.id) == {t.id for t in riches}
    assert (await db.get_key(short.id)).balance_micro == 0
    assert await db.keys.ledger_sum(short.id) == 0
    assert (await db.get_key(rich.id)).balance_micro == 95 == await db.keys.ledger_sum(rich.id)


async def test_engines_hear_of_written_batches_only(db, database_url):
    """A batch whose creates are all refused, alone or together, announces nothing; a batch
    with one written announces it once, on commit (notifications arrive in commit order,
    so one from the refused batches would have come first)."""
    needs_postgresql("PostgreSQL's writers")
    heard: list[str] = []
    listener = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await listener.add_listener(CHANNEL, lambda *args: heard.append(args[-1]))
        broke, _ = await db.create_key("broke", balance_micro=0)
        with pytest.raises(InsufficientBalance):
            await db.tasks.insert(make_task(broke.id, hold=1))
        refused = await asyncio.gather(*(db.tasks.insert(make_task(broke.id, hold=1))
                                         for _ in range(3)), return_exceptions=True)
        assert all(isinstance(o, InsufficientBalance) for o in refused), refused
        payer, _ = await db.create_key("payer", balance_micro=1)
        mixed = await asyncio.gather(*(db.tasks.insert(make_task(payer.id, hold=1))
                                       for _ in range(3)), return_exceptions=True)
        assert sum(not isinstance(o, BaseException) for o in mixed) == 1

        async def announced() -> bool:
            return bool(heard)

        await await_for(announced, timeout=20, what="the written batch's notification")
        assert heard == [""]
    finally:
        await listener.close()


async def test_a_batch_of_unlimited_creates_is_a_few_round_trips(db, monkeypatch):
    """Twenty creates at once for keys without a limit (one with a balance: holds and
    ledger rows) are written in a fixed number of round trips, not a few per create, and
    write what one after another writes: a reused Idempotency-Key among them gives back
    the first task."""
    needs_postgresql("PostgreSQL's writers")
    free, _ = await db.create_key("free")
    paying, _ = await db.create_key("paying", balance_micro=100)
    await db.tasks.insert(make_task(free.id))  # the writers' connections are open
    await db.tasks.insert(make_task(paying.id, hold=1))
    calls: list[str] = []
    for name in ("execute", "fetchrow", "fetchmany", "executemany", "fetch", "fetchval"):
        real = getattr(asyncpg.connection.Connection, name)

        def counted(conn, *args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(conn, *args, **kwargs)

        monkeypatch.setattr(asyncpg.connection.Connection, name, counted)
    same = db._writer.writer_of(paying.id) == db._writer.writer_of(free.id)
    creates = [make_task(free.id) for _ in range(10)] + [
        make_task(paying.id, hold=1) for _ in range(10)]
    outcomes = await asyncio.gather(*(db.tasks.insert(t) for t in creates))
    assert outcomes == [(t, True) for t in creates]
    # per batch: BEGIN (with its savepoint and NOTIFY), the holds, then per round the
    # INSERTs and ledger rows, COMMIT; the two keys in one batch (the paying key's INSERTs
    # a round later) or in one batch each (one writer's before the other's calls)
    assert len(calls) <= (6 if same else 4 + 5), calls
    assert (await db.get_key(paying.id)).balance_micro == 89
    assert await db.keys.ledger_sum(paying.id) == 89
    assert len(await task_ids(db, free.id)) == 11
    first, again = make_task(free.id, idempotency_key="once"), make_task(
        free.id, idempotency_key="once")
    others = [make_task(free.id) for _ in range(3)]
    outcomes = await asyncio.gather(*(db.tasks.insert(t) for t in (first, again, *others)))
    assert outcomes[0] == (first, True) and outcomes[1][0].id == first.id
    assert outcomes[1][1] is False and outcomes[2:] == [(t, True) for t in others]
    assert len(await task_ids(db, free.id)) == 15
