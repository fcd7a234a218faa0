"""Task rows as the API side sees them: insert (with the hold), read, list, delete, expire.

On an SQLite file, one-task reads run the compiled statement on a plain `sqlite3` connection
on the event loop (sqlite_reads) and inserts go to the group-commit thread (sqlite_writes);
on PostgreSQL reads run on plain asyncpg connections (pg_direct) and inserts are batched
too (pg_writes); elsewhere, and for everything else, the same statements run through
SQLAlchemy (other writes through store/writes.py, so on an SQLite file by the same thread).
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..domain import Task
from . import admission
from .pg_direct import PgDirect
from .pg_writes import PgTaskWriter
from .schema import task_events, tasks
from .sqlite_reads import SqliteRows
from .sqlite_writes import SqliteWriter
from .writes import Writes

_TASK_FIELDS = frozenset(f.name for f in dataclasses.fields(Task))

_LIVE = sa.select(tasks).where(tasks.c.id == sa.bindparam("task_id"),
                               tasks.c.deleted_at.is_(None))
TASK_BY_ID = _LIVE
TASK_BY_ID_FOR_OWNER = _LIVE.where(tasks.c.owner_id == sa.bindparam("owner_id"))
# A reused Idempotency-Key, as each writer reports it.
_DUPLICATE = (IntegrityError, sqlite3.IntegrityError, asyncpg.UniqueViolationError)


def task_from_mapping(mapping: Any) -> Task:
    """A row as a Task; values are already converted by the column types (JSON, booleans)."""
    return Task(**{k: v for k, v in mapping.items() if k in _TASK_FIELDS})


def task_from_row(row: Any) -> Task:
    return task_from_mapping(row._mapping)


def task_row(task: Task) -> dict[str, Any]:
    """The row to insert (`seq` is the database's). Shallow: dataclasses.asdict deep-copied
    every value and was a sixth of a create."""
    return {name: getattr(task, name) for name in admission.TASK_COLUMNS}


# What the operator's list of recent tasks shows (GET /admin/tasks).
_RECENT_COLUMNS = (tasks.c.id, tasks.c.owner_id, tasks.c.family, tasks.c.model, tasks.c.status,
            tasks.c.progress, tasks.c.backend, tasks.c.error_code, tasks.c.error_message,
            tasks.c.created_at, tasks.c.status_updated_at, tasks.c.completed_at)


class Tasks:
    def __init__(self, engine: AsyncEngine, writes: Writes,
                 rows: SqliteRows | PgDirect | None = None,
                 writer: SqliteWriter | PgTaskWriter | None = None) -> None:
        self.engine = engine
        self.writes = writes   # every write but a create
        self._rows = rows      # the fast path's one-row reads, when there is one
        self._writer = writer  # and its group-commit writer of new tasks

    async def insert(self, task: Task, *, max_concurrent: int | None = None
                     ) -> tuple[Task, bool]:
        """Insert a new task and take its hold (`task.hold_micro`), in one transaction.

        With an idempotency key already used, nothing is written and the earlier task is
        returned. Raises InsufficientBalance or ConcurrencyLimitReached, writing nothing.
        Returns (task, created).
        """
        row = task_row(task)
        try:
            if self._writer is not None:
                await self._writer.insert(row, max_concurrent)
            else:
                async with self.engine.begin() as conn:
                    await admission.run_async(conn, row, max_concurrent)
        except _DUPLICATE:
            if task.idempotency_key is None:
                raise
            existing = await self.find_by_idempotency_key(task.owner_id, task.idempotency_key)
            if existing is None:
                raise
            return existing, False
        return task, True

    async def find_by_idempotency_key(self, owner_id: str, key: str) -> Task | None:
        query = sa.select(tasks).where(
            tasks.c.owner_id == owner_id, tasks.c.idempotency_key == key
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return task_from_row(row) if row else None

    async def get(self, task_id: str, owner_id: str | None = None) -> Task | None:
        """A live (not deleted) task; with owner_id, only if that owner created it."""
        if owner_id is None:
            stmt, values = TASK_BY_ID, {"task_id": task_id}
        else:
            stmt, values = TASK_BY_ID_FOR_OWNER, {"task_id": task_id, "owner_id": owner_id}
        if self._rows is not None:
            found = await self._rows.one(stmt, values)
            return task_from_mapping(found) if found else None
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt, values)).first()
        return task_from_row(row) if row else None

    async def list(
        self, owner_id: str, *, after: str | None, limit: int, descending: bool
    ) -> tuple[list[Task], bool]:
        query = sa.select(tasks).where(tasks.c.owner_id == owner_id, tasks.c.deleted_at.is_(None))
        async with self.engine.connect() as conn:
            if after:
                seq = (
                    await conn.execute(
                        sa.select(tasks.c.seq).where(
                            tasks.c.id == after, tasks.c.owner_id == owner_id
                        )
                    )
                ).scalar()
                if seq is None:
                    return [], False
                query = query.where(tasks.c.seq < seq if descending else tasks.c.seq > seq)
            order = tasks.c.seq.desc() if descending else tasks.c.seq.asc()
            rows = (await conn.execute(query.order_by(order).limit(limit + 1))).all()
        found = [task_from_row(r) for r in rows]
        return found[:limit], len(found) > limit

    async def mark_deleted(self, task_id: str, owner_id: str) -> bool:
        """Hide the task from its owner at once; an unfinished one is also asked to cancel,
        which the engine turns into the cancelled ending (lifecycle.FAILED_ENDING) next."""
        stmt = (tasks.update()
                .where(tasks.c.id == task_id, tasks.c.owner_id == owner_id,
                       tasks.c.deleted_at.is_(None))
                .values(deleted_at=int(time.time()), cancel_requested=True,
                        next_poll_at=time.time()))
        return await self.writes.run(lambda conn: conn.execute(stmt).rowcount) > 0

    async def cancel_requested(self, task_id: str) -> bool:
        async with self.engine.connect() as conn:
            value = (
                await conn.execute(
                    sa.select(tasks.c.cancel_requested).where(tasks.c.id == task_id)
                )
            ).scalar()
        return bool(value)

    async def expired_assets(self, now: float, limit: int) -> list[str]:
        """Ids of tasks whose stored assets are past their retention and still present."""
        query = (
            sa.select(tasks.c.id)
            .where(tasks.c.video_key.is_not(None), tasks.c.assets_expire_at < now)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [r[0] for r in (await conn.execute(query)).all()]

    async def clear_assets(self, task_id: str) -> None:
        stmt = tasks.update().where(tasks.c.id == task_id).values(
            video_key=None, thumbnail_key=None, spritesheet_key=None, reference_key=None)
        await self.writes.run(lambda conn: conn.execute(stmt).rowcount)

    async def events(self, task_id: str | None = None) -> list[tuple[str, str]]:
        query = sa.select(task_events.c.task_id, task_events.c.kind).order_by(task_events.c.id)
        if task_id:
            query = query.where(task_events.c.task_id == task_id)
        async with self.engine.connect() as conn:
            return [(r[0], r[1]) for r in (await conn.execute(query)).all()]

    async def recent(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        """The newest tasks (deleted ones included: a failure is worth seeing after the user
        deleted it), optionally in one state; newest first."""
        query = sa.select(*_RECENT_COLUMNS).order_by(tasks.c.seq.desc()).limit(limit)
        if status is not None:
            query = query.where(tasks.c.status == status)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            {"id": r.id, "key_id": r.owner_id, "family": r.family, "model": r.model,
             "status": r.status, "progress": r.progress, "channel": r.backend,
             "error": {"code": r.error_code, "message": r.error_message or ""}
             if r.error_code else None,
             "created_at": r.created_at, "status_updated_at": r.status_updated_at,
             "completed_at": r.completed_at}
            for r in rows
        ]
