"""Task rows as the engine sees them: claimed under a lease, written only while it is held.

Claiming is one UPDATE of the due rows RETURNING them (`claim_statement`). On PostgreSQL its
choice of rows is `FOR UPDATE SKIP LOCKED`, so workers claiming at once take different rows
instead of queueing on the same ones; on SQLite, which has one writer at a time, the
UPDATE's own condition (the lease is free) decides who won. Every write names the worker and
succeeds only while its lease holds; where a task may go and how its hold is settled comes
from lifecycle.py. Each write is a function of one connection (the `_`-named functions
below), run in its own transaction by store/writes.py: on an SQLite file by the process's one
writer thread, elsewhere on a pooled connection.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from .. import lifecycle
from ..domain import ACTIVE, Task
from ..observability import metrics
from . import ledger as ledger_ops
from . import wakeups
from .pg_direct import PgDirect
from .schema import DUE_AT, task_events, tasks
from .tasks import task_from_mapping, task_from_row
from .writes import Writes

# The due time of a task a provider called back: before every real time, so it goes first.
CALLED_BACK = 0.0


# Unfinished, with the statuses written into the SQL text rather than sent as parameters:
# PostgreSQL can then use the partial indexes on unfinished tasks (migration 0005) in every
# plan, the generic plans of prepared statements included.
UNFINISHED = tasks.c.status.in_([sa.literal(str(s), literal_execute=True) for s in ACTIVE])


def claim_statement(dialect: str, submit: bool | None) -> sa.Update:
    """The claim, written once: lease up to `:limit` due tasks to `:worker` and return them.

    `submit` narrows the rows as `Leases.claim_due` says. The due rows are chosen by a
    subquery, most overdue first (NULL, due first: a called-back task whose lease ran out
    before its step handed it back);
    on PostgreSQL it locks them `SKIP LOCKED`, so concurrent claims split the work between
    them without waiting; elsewhere the outer WHERE (the lease is still free) decides.
    """
    return _CLAIMS[dialect == "postgresql", submit]


# What a claim leaves in `next_poll_at`: the due time it was claimed at, except a callback's
# mark (`CALLED_BACK`), which this claim answers and so clears. Leaving the time as it is
# keeps every indexed column of the row unchanged, so that PostgreSQL can write the claim
# in place (a HOT update: no new entry in any of the table's indexes); at 100,000 in flight
# a claim and a hand-back per poll were millions of index writes an hour. The hand-back
# tells a time written during the step from this one by the value the claim returned
# (`_RELEASE`).
_USED_UP = sa.case((tasks.c.next_poll_at == CALLED_BACK, sa.null()), else_=tasks.c.next_poll_at)


def _claim(skip_locked: bool, submit: bool | None) -> sa.Update:
    now = sa.bindparam("now", type_=sa.Float)
    lease_free = sa.or_(tasks.c.lease_until.is_(None), tasks.c.lease_until < now)
    if skip_locked:  # PostgreSQL: due is a range of ix_tasks_unfinished_due_at (schema.py)
        is_due, due_order = DUE_AT <= now, DUE_AT
    else:  # the same rule as SQLite's ix_tasks_due (status, next_poll_at) reads it
        is_due = sa.or_(tasks.c.next_poll_at.is_(None), tasks.c.next_poll_at <= now)
        due_order = tasks.c.next_poll_at.asc().nulls_first()
    cond = [UNFINISHED, is_due, lease_free]
    must_end = sa.or_(tasks.c.cancel_requested == sa.true(), tasks.c.deadline_at < now)
    if submit is True:
        cond += [tasks.c.upstream_id.is_(None), sa.not_(must_end)]
    elif submit is False:
        cond.append(sa.or_(tasks.c.upstream_id.is_not(None), must_end))
    due = (sa.select(tasks.c.id).where(*cond)
           .order_by(due_order)
           .limit(sa.bindparam("limit", type_=sa.Integer)))
    if skip_locked:
        # = ANY(ARRAY(...)): the locked ids are found first, then updated through the id
        # index; as an IN, the planner hash-joined them against every unfinished row
        chosen = tasks.c.id == sa.func.any(sa.func.array(due.with_for_update(skip_locked=True)
                                                          .scalar_subquery()))
    else:
        chosen = tasks.c.id.in_(due.scalar_subquery())
    return (
        tasks.update()
        .where(chosen,
               UNFINISHED, lease_free)
        .values(lease_owner=sa.bindparam("worker"), lease_until=sa.bindparam("lease_until"),
                next_poll_at=_USED_UP, attempts=tasks.c.attempts + 1)
        .returning(*tasks.c)
    )


_CLAIMS = {(skip, submit): _claim(skip, submit)
           for skip in (True, False) for submit in (True, False, None)}


# Unfinished tasks an upstream accepted, per channel (`Leases.count_in_flight`).
IN_FLIGHT = (
    sa.select(tasks.c.backend, sa.func.count().label("count"))
    .where(UNFINISHED, tasks.c.backend.is_not(None), tasks.c.upstream_id.is_not(None))
    .group_by(tasks.c.backend)
)


def _may_become(status: str) -> sa.ColumnElement[bool]:
    """The stored status is one `status` may overwrite (for an ending: the task is active)."""
    return tasks.c.status.in_(lifecycle.sources(status))


class Leases:
    def __init__(self, engine: AsyncEngine, writes: Writes, *,
                 charge_overage: bool = False, direct: PgDirect | None = None) -> None:
        self.engine = engine   # reads
        self.writes = writes   # everything else
        # On PostgreSQL the statements of every round of the engine (its claims, hand-backs
        # and in-flight count) run compiled on asyncpg, each its own transaction: through
        # the async adapter each was BEGIN, the statement and COMMIT, three round trips and
        # SQLAlchemy's layers, and with the bind and the ending those transactions were
        # most of what a followed task cost more than on SQLite (bench/RESULTS.md)
        self._direct = direct
        # operator policy: a video longer than held is charged beyond the hold (never below 0)
        self.charge_overage = charge_overage

    async def claim_due(
        self, worker: str, now: float, lease_until: float, limit: int,
        *, submit: bool | None = None,
    ) -> list[Task]:
        """Lease up to `limit` due tasks to `worker`; a task is leased to one worker at a time.

        `submit=True` claims only tasks still waiting for a channel (so the engine can take
        no more than its channels have room for); `submit=False` only the others: bound
        tasks, and waiting ones that must end now (cancelled, past their deadline).
        One statement claims the whole batch (`claim_statement`).
        A claim leaves `next_poll_at` as it was (but for a callback's mark, `_USED_UP`):
        while the lease holds, a different value there means someone asked for the task to
        be looked at again (`make_due`, a cancel), which the hand-back keeps.
        """
        stmt = claim_statement(self.engine.dialect.name, submit)
        params = {"worker": worker, "now": now, "lease_until": lease_until, "limit": limit}
        if self._direct is not None:
            return [task_from_mapping(r) for r in await self._direct.run(stmt, params)]
        rows = await self.writes.run(lambda conn: conn.execute(stmt, params).all())
        return [task_from_row(r) for r in rows]

    async def count_in_flight(self) -> dict[str, int]:
        """Unfinished tasks that an upstream accepted, per channel (for in-flight caps)."""
        if self._direct is not None:
            return {r["backend"]: r["count"] for r in await self._direct.all(IN_FLIGHT, {})
                    if r["backend"]}
        async with self.engine.connect() as conn:
            return {r[0]: r[1] for r in (await conn.execute(IN_FLIGHT)).all() if r[0]}

    async def reserve_slot(self, task_id: str, worker: str, channel: str, cap: int) -> bool:
        """Take one of `channel`'s `cap` places for this held task before offering it the
        job; False when every place is taken, by any worker.

        The task row itself records the place (`backend` set, `upstream_id` not yet), so it
        counts for every engine until the task ends, and the binding (`update_leased`) or
        `free_slot` settles it. The count and the write are one statement; on PostgreSQL a
        lock per channel, held to the commit, makes concurrent reservations take turns (on
        SQLite the database's single writer does)."""
        return await self.writes.run(
            functools.partial(_reserve_slot, task_id=task_id, worker=worker, channel=channel,
                              cap=cap))

    async def free_slot(self, task_id: str, worker: str) -> None:
        """Give back the place `reserve_slot` took, when the channel did not take the job."""
        stmt = (tasks.update()
                .where(tasks.c.id == task_id, tasks.c.lease_owner == worker,
                       tasks.c.upstream_id.is_(None))
                .values(backend=None))
        await self.writes.run(lambda conn: conn.execute(stmt).rowcount)

    async def renew(self, worker: str, ids: Sequence[str], lease_until: float) -> set[str]:
        """Extend leases still held; returns the ids whose lease this worker lost."""
        if not ids:
            return set()
        held = await self.writes.run(
            functools.partial(_renew, worker=worker, ids=list(ids), lease_until=lease_until))
        return set(ids) - held

    async def release_many(self, worker: str, releases: dict[str, dict[str, Any]]) -> None:
        """Hand back many held tasks in one transaction: each gets its next poll time, status
        and progress (never lower than stored); tasks whose lease was lost are untouched.
        Each release also names the `next_poll_at` its claim returned
        (`claimed_next_poll_at`): a different time found stored was written during the step
        and wins when it is sooner."""
        # In id order, the order the heartbeat's `renew` locks the same rows in
        # (`_held_in_id_order`): in any other order the two transactions of one engine
        # deadlock on PostgreSQL, and a failed flush leaves its tasks until their leases run out.
        rows = [
            {"b_id": task_id, "b_worker": worker, "b_next": v["next_poll_at"],
             "b_claimed": v["claimed_next_poll_at"],
             "b_status": v["status"], "b_updated": v["status_updated_at"],
             "b_progress": v["progress"]}
            for task_id, v in sorted(releases.items())
        ]
        if self._direct is not None:
            await self._direct.run_many(_RELEASE, rows)
            return
        await self.writes.run(lambda conn: conn.execute(_RELEASE, rows).rowcount)

    async def hand_back_now(self, worker: str, ids: Sequence[str], now: float) -> None:
        """Give up this worker's leases on `ids`, due at once: a stopping worker's tasks go
        to the next worker that claims, not after their lease runs out."""
        if not ids:
            return
        stmt = (tasks.update().where(_held_in_id_order(worker, ids))
                .values(lease_owner=None, lease_until=None, next_poll_at=now))
        await self.writes.run(functools.partial(_announced, stmt=stmt, always=True))

    async def make_due(self, task_id: str, channel: str) -> bool:
        """Ask for `task_id` to be looked at before anything else (a verified provider
        callback), if it is still unfinished and bound to `channel` (or still being
        submitted, when a fast provider calls back before the binding is written).

        Its due time becomes the earliest there is, so it is claimed ahead of the routine
        fallback polls of thousands of other tasks (which may be overdue when the engine is
        busy). Whoever holds its lease keeps it; the hand-back then keeps this time
        (`release_many`). False when nothing fits."""
        stmt = (tasks.update()
                .where(tasks.c.id == task_id, tasks.c.status.in_(ACTIVE),
                       sa.or_(tasks.c.backend == channel, tasks.c.backend.is_(None)))
                .values(next_poll_at=CALLED_BACK))
        # announced: the callback may have reached an API-only process
        return await self.writes.run(functools.partial(_announced, stmt=stmt)) > 0

    async def update_leased(self, task_id: str, worker: str, **values: Any) -> bool:
        """Write fields of a task this worker holds; False when the lease was lost."""
        return await self.writes.run(
            functools.partial(_update_leased, task_id=task_id, worker=worker, values=values))

    async def finish_leased(self, task_id: str, worker: str, status: str,
                            charge_micro: int = 0, **values: Any) -> bool:
        """End a held task with `status` (completed or failed), atomically and once: the
        event row, the settlement of its hold and the webhook notification are written in
        the same transaction. `charge_micro` is the delivered price; what is kept of it is
        the ending's rule (lifecycle.ENDINGS)."""
        settled = await self.writes.run(functools.partial(
            _finish_leased, task_id=task_id, worker=worker, status=status,
            charge_micro=charge_micro, charge_overage=self.charge_overage, values=values))
        if settled is None:
            return False
        metrics.settled(*settled)
        return True


# The hand-back of one task, run for many at once (executemany).
_NEXT = sa.bindparam("b_next", type_=sa.Float)
_CLAIMED = sa.bindparam("b_claimed", type_=sa.Float)  # `next_poll_at` as the claim left it
_RELEASE = (
    tasks.update()
    .where(tasks.c.id == sa.bindparam("b_id"), tasks.c.lease_owner == sa.bindparam("b_worker"))
    .values(
        lease_owner=None, lease_until=None,
        # a due time written during the step (`make_due` for a provider callback, a cancel)
        # wins over the step's own later time; the time the claim left does not
        next_poll_at=sa.case(
            (sa.and_(tasks.c.next_poll_at < _NEXT,
                     sa.or_(_CLAIMED.is_(None), tasks.c.next_poll_at != _CLAIMED)),
             tasks.c.next_poll_at),
            else_=_NEXT),
        status=sa.bindparam("b_status"),
        status_updated_at=sa.bindparam("b_updated"),
        progress=lifecycle.progress_at_least(tasks.c.progress, sa.bindparam("b_progress")),
    )
)


def _reserve_slot(conn: sa.Connection, *, task_id: str, worker: str, channel: str,
                  cap: int) -> bool:
    others = (sa.select(sa.func.count()).select_from(tasks)
              .where(tasks.c.backend == channel, UNFINISHED, tasks.c.id != task_id)
              .scalar_subquery())
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(
            sa.func.hashtext("vidgate.channel." + channel))))
    result = conn.execute(
        tasks.update()
        .where(tasks.c.id == task_id, tasks.c.lease_owner == worker,
               tasks.c.upstream_id.is_(None), others < cap)
        .values(backend=channel))
    return result.rowcount > 0


def _renew(conn: sa.Connection, *, worker: str, ids: list[str], lease_until: float
           ) -> set[str]:
    """The ids among `ids` still leased to `worker`, their leases extended."""
    conn.execute(tasks.update().where(_held_in_id_order(worker, ids))
                 .values(lease_until=lease_until))
    return {r[0] for r in conn.execute(sa.select(tasks.c.id).where(_leased_to(worker, ids)))}


def _leased_to(worker: str, ids: Sequence[str]) -> sa.ColumnElement[bool]:
    return sa.and_(tasks.c.id.in_(list(ids)), tasks.c.lease_owner == worker)


def _held_in_id_order(worker: str, ids: Sequence[str]) -> sa.ColumnElement[bool]:
    """Rows of `ids` leased to `worker`, locked first in id order (a subquery `ORDER BY id
    FOR UPDATE`). Every statement that writes many of one engine's rows takes their locks in
    that one order, as `release_many` writes them: a plain `WHERE id IN (...)` locks in the
    order its plan reads the table, and at 100,000 in flight on PostgreSQL the heartbeat's
    renewal and the batched hand-back of the same engine deadlocked that way. (SQLite has
    one writer and no row locks; `FOR UPDATE` renders as nothing there.)"""
    locked = (sa.select(tasks.c.id)
              .where(_leased_to(worker, ids))
              .order_by(tasks.c.id)
              .with_for_update())
    return tasks.c.id.in_(locked.scalar_subquery())


def _announced(conn: sa.Connection, *, stmt: sa.Update, always: bool = False) -> int:
    """Run `stmt`; when it changed rows (or `always`), tell listening engines."""
    count = conn.execute(stmt).rowcount
    if count > 0 or always:
        wakeups.announce(conn)
    return count


def _finish_leased(conn: sa.Connection, *, task_id: str, worker: str, status: str,
                   charge_micro: int, charge_overage: bool, values: dict[str, Any]
                   ) -> tuple[int, int] | None:
    """The ending, written once: (charged, refunded), or None when the lease was lost."""
    ending = lifecycle.ENDINGS[status]
    values = {**values, "status": ending.status}
    if not _update_leased(conn, task_id=task_id, worker=worker, values=values,
                          unless_cancelled=ending.loses_to_cancel):
        return None
    conn.execute(task_events.insert().values(
        task_id=task_id, kind=ending.event, created_at=int(time.time())))
    facts = ledger_ops.ending_facts(conn, task_id)  # read under the update's row lock
    if facts is None:
        return 0, 0
    settled = ledger_ops.settle(conn, facts, task_id, ending.charge(charge_micro),
                                charge_overage)
    ledger_ops.enqueue_webhook(conn, facts, task_id, f"video.{ending.event}")
    return settled


def _update_leased(conn: sa.Connection, *, task_id: str, worker: str,
                   values: dict[str, Any], unless_cancelled: bool = False) -> bool:
    cond = [tasks.c.id == task_id, tasks.c.lease_owner == worker]
    if "status" in values:
        cond.append(_may_become(values["status"]))
    if unless_cancelled:
        cond.append(tasks.c.cancel_requested == sa.false())
    if "progress" in values:
        values = {**values,
                  "progress": lifecycle.progress_at_least(tasks.c.progress, values["progress"])}
    return conn.execute(tasks.update().where(*cond).values(**values)).rowcount > 0
