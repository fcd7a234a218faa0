"""The task lifecycle (lifecycle.py): its rules, and the store's conditional updates that use
them against a real database (both databases, as the suite runs)."""

from __future__ import annotations

import time

import orjson
import pytest

from vidgate import lifecycle
from vidgate.domain import COMPLETED, FAILED, IN_PROGRESS, QUEUED, Task, TaskStatus, new_task_id
from vidgate.lifecycle import ACTIVE, ENDINGS, TERMINAL, TRANSITIONS
from vidgate.store.database import Database


def test_statuses_are_the_strings_rows_and_json_carry():
    assert [s.value for s in TaskStatus] == ["queued", "in_progress", "completed", "failed"]
    assert COMPLETED == "completed" and f"{IN_PROGRESS}" == "in_progress"
    assert orjson.loads(orjson.dumps({"status": QUEUED})) == {"status": "queued"}


def test_active_and_terminal_follow_from_the_transitions():
    assert ACTIVE == (QUEUED, IN_PROGRESS) and TERMINAL == (COMPLETED, FAILED)
    assert set(TRANSITIONS) == set(TaskStatus)
    assert set(ENDINGS) == set(TERMINAL)  # every way to end says how its hold is settled


@pytest.mark.parametrize(("current", "new", "legal"), [
    (QUEUED, IN_PROGRESS, True), (QUEUED, COMPLETED, True), (QUEUED, FAILED, True),
    (IN_PROGRESS, IN_PROGRESS, True), (IN_PROGRESS, COMPLETED, True),
    (IN_PROGRESS, QUEUED, False),      # never back to queued
    (COMPLETED, COMPLETED, False), (COMPLETED, FAILED, False), (FAILED, COMPLETED, False),
    (FAILED, FAILED, False),           # an ended task is never written again
])
def test_moves(current, new, legal):
    assert lifecycle.can_move(current, new) is legal


def test_reports_from_a_backend():
    assert lifecycle.reported_status(QUEUED, IN_PROGRESS) == IN_PROGRESS
    assert lifecycle.reported_status(IN_PROGRESS, QUEUED) is None
    assert lifecycle.reported_status(QUEUED, QUEUED) is None
    assert lifecycle.reported_status(QUEUED, COMPLETED) is None  # completion is the finalizer's
    assert lifecycle.reported_progress(10, 40.7) == 40
    assert lifecycle.reported_progress(40, 10) is None            # never down
    assert lifecycle.reported_progress(40, 250) == 99             # 100 is completion's
    assert lifecycle.reported_progress(0, -5) is None


def test_settlement_per_ending():
    assert ENDINGS[COMPLETED].charge(700) == 700 and ENDINGS[FAILED].charge(700) == 0
    assert ENDINGS[COMPLETED].loses_to_cancel and not ENDINGS[FAILED].loses_to_cancel


async def _leased_task(db: Database, worker: str = "w") -> Task:
    key, _ = await db.create_key("life")
    now = time.time()
    task = Task(id=new_task_id(), owner_id=key.id, family="videos", model="sora-2",
                prompt="p", width=1280, height=720, seconds=4, seed=0, status=QUEUED,
                progress=0, created_at=int(now), status_updated_at=int(now),
                deadline_at=now + 3600, next_poll_at=now)
    await db.tasks.insert(task)
    (claimed,) = await db.leases.claim_due(worker, now + 1, now + 60, 10)
    return claimed


async def test_store_refuses_what_the_lifecycle_refuses(database_url):
    db = Database(database_url)
    await db.migrate()
    try:
        task = await _leased_task(db)
        assert await db.leases.update_leased(task.id, "w", status=IN_PROGRESS, progress=50)
        # progress never goes down, status never goes back to queued
        assert await db.leases.update_leased(task.id, "w", progress=20)
        assert not await db.leases.update_leased(task.id, "w", status=QUEUED)
        await db.leases.release_many("w", {task.id: {
            "next_poll_at": time.time(), "status": IN_PROGRESS, "progress": 30,
            "status_updated_at": int(time.time()), "claimed_next_poll_at": task.next_poll_at}})
        stored = await db.get_task(task.id)
        assert (stored.status, stored.progress) == (IN_PROGRESS, 50)

        (task,) = await db.leases.claim_due("w", time.time() + 1, time.time() + 60, 10)
        assert await db.leases.finish_leased(task.id, "w", FAILED, error_code="cancelled",
                                             lease_owner="w")
        # an ended task is never written again, even by the worker still holding it
        assert not await db.leases.update_leased(task.id, "w", status=IN_PROGRESS)
        assert not await db.leases.finish_leased(task.id, "w", COMPLETED, charge_micro=5)
        assert not await db.leases.finish_leased(task.id, "w", FAILED)
        assert (await db.get_task(task.id)).status == FAILED
        assert await db.events(task.id) == [(task.id, "failed")]
    finally:
        await db.close()


async def test_completion_loses_to_a_cancel_requested_meanwhile(database_url):
    db = Database(database_url)
    await db.migrate()
    try:
        task = await _leased_task(db)
        assert await db.tasks.mark_deleted(task.id, task.owner_id)
        assert not await db.leases.finish_leased(task.id, "w", COMPLETED, charge_micro=5)
        assert await db.leases.finish_leased(task.id, "w", FAILED, error_code="cancelled")
        assert await db.events(task.id) == [(task.id, "failed")]
    finally:
        await db.close()
