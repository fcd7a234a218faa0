"""A claim changes no indexed column of the task row, so that PostgreSQL writes it in place
(a HOT update, no new index entries): it leaves `next_poll_at` as it was, and the hand-back
tells a due time written during the step from the one the claim left by the value the
claim returned. At 100,000 in flight every poll was a claim and a hand-back, each a new
entry in every index of `tasks` (bench/RESULTS.md)."""

from __future__ import annotations

import time

import sqlalchemy as sa

from support import make_task, needs_postgresql
from vidgate.store.leases import CALLED_BACK, claim_statement
from vidgate.store.pg_direct import compile_on
from vidgate.store.schema import tasks


async def _one_claimed(db):
    """A stored task, claimed by worker "w": (its key's id, the task, as claimed, when)."""
    key, _ = await db.create_key("k")
    task = make_task(key.id)
    await db.tasks.insert(task)
    now = time.time() + 1
    [claimed] = await db.leases.claim_due("w", now, now + 60, 10)
    return key.id, task, claimed, now


async def _due_time(db, task_id: str) -> float | None:
    """The stored `next_poll_at` (deleted tasks included, which the store's reads hide)."""
    async with db.engine.connect() as conn:
        return await conn.scalar(sa.select(tasks.c.next_poll_at).where(tasks.c.id == task_id))


def _back(task, at: float) -> dict:
    return {task.id: {"next_poll_at": at, "status": task.status, "progress": 0,
                      "status_updated_at": int(at), "claimed_next_poll_at": task.next_poll_at}}


async def test_a_claim_keeps_the_due_time_and_the_hand_back_replaces_it(db):
    key_id, task, claimed, now = await _one_claimed(db)
    assert claimed.next_poll_at == task.next_poll_at  # left as it was
    await db.leases.release_many("w", _back(claimed, now + 500))
    stored = await db.get_task(task.id)
    assert stored.next_poll_at == now + 500 and stored.lease_owner is None


async def test_a_due_time_written_during_the_step_wins_over_the_hand_back(db):
    key_id, task, claimed, now = await _one_claimed(db)
    assert await db.tasks.mark_deleted(task.id, key_id)  # a delete asks to cancel: due now
    asked = await _due_time(db, task.id)
    assert asked > claimed.next_poll_at
    await db.leases.release_many("w", _back(claimed, now + 500))
    assert await _due_time(db, task.id) == asked


async def test_a_claim_answers_a_callback_once(db):
    """A called-back task's mark is cleared by the claim that answers it: its hand-back
    then sets the step's own time (kept, it would be claimed again at once, forever); a
    second callback during that step is kept."""
    key_id, task, claimed, now = await _one_claimed(db)
    assert await db.leases.update_leased(task.id, "w", backend="chan", upstream_id="up")
    assert await db.leases.make_due(task.id, "chan")
    await db.leases.release_many("w", _back(claimed, now + 500))
    assert await _due_time(db, task.id) == CALLED_BACK

    [answering] = await db.leases.claim_due("w", now, now + 60, 10)
    assert answering.next_poll_at is None
    await db.leases.release_many("w", _back(answering, now + 500))
    assert await _due_time(db, task.id) == now + 500

    [again] = await db.leases.claim_due("w", now + 501, now + 560, 10)
    assert await db.leases.make_due(task.id, "chan")
    await db.leases.release_many("w", _back(again, now + 1000))
    assert await _due_time(db, task.id) == CALLED_BACK


async def test_on_postgresql_a_claim_is_a_hot_update(db):
    needs_postgresql("HOT updates")
    key, _ = await db.create_key("k")
    await db.tasks.insert(make_task(key.id))
    now = time.time() + 1
    async with db.engine.begin() as conn:
        claimed = (await conn.execute(claim_statement("postgresql", None), {
            "worker": "w", "now": now, "lease_until": now + 60, "limit": 10})).all()
        counts = (await conn.execute(sa.text(
            "SELECT pg_stat_get_xact_tuples_updated('tasks'::regclass), "
            "pg_stat_get_xact_tuples_hot_updated('tasks'::regclass)"))).one()
    assert len(claimed) == 1
    assert tuple(counts) == (1, 1)


async def test_on_postgresql_the_claims_due_condition_is_a_range_of_its_index(db):
    """`due <= now` bounds each claim's index scan (an Index Cond), so a claim that finds
    fewer due tasks than its batch stops at the first task not yet due instead of reading
    every unfinished row; checked on the generic plans, as prepared claims run."""
    needs_postgresql("the claims' plans")
    key, _ = await db.create_key("k")
    await db.tasks.insert(make_task(key.id))
    plans = {}
    async with db.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        await raw.execute("SET enable_seqscan = off")  # a tiny table would be read whole
        await raw.execute("SET plan_cache_mode = force_generic_plan")
        for submit in (None, False, True):
            claim = await compile_on(raw, claim_statement("postgresql", submit))
            await raw.execute(f"PREPARE claim AS {claim.sql}")
            args = claim.args({"worker": "w", "now": 1.0, "lease_until": 31.0, "limit": 256})
            values = ", ".join(f"'{a}'" for a in args)
            plans[submit] = "\n".join(r[0] for r in await raw.fetch(
                f"EXPLAIN (COSTS OFF) EXECUTE claim({values})"))
            await raw.execute("DEALLOCATE claim")
        await conn.invalidate()  # its settings stay with this connection
    for submit, plan in plans.items():
        index = "ix_tasks_waiting_due_at" if submit else "ix_tasks_unfinished_due_at"
        assert f"Index Scan using {index}" in plan, plan
        assert "Index Cond: (COALESCE(next_poll_at" in plan, plan
