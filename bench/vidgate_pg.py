"""The PostgreSQL side of the engine phase: a fresh database of the run's own, and the same
completion watch as vidgate_db.py's (the moment each `completed` event row appeared), read
with asyncpg on a thread of its own."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import asyncpg
import sqlalchemy as sa

from .procs import BackgroundSampler


def _dsn(url: str, database: str | None = None) -> str:
    parsed = sa.engine.make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def recreate(url: str) -> None:
    """Drop and create the database `url` names (the benchmark's own, never a shared one)."""
    name = sa.engine.make_url(url).database
    if not name or name in ("postgres", "template0", "template1"):
        raise ValueError(f"refusing to recreate database {name!r}")

    async def run() -> None:
        conn = await asyncpg.connect(_dsn(url, "postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(run())


def size_mib(url: str) -> float:
    async def run() -> int:
        conn = await asyncpg.connect(_dsn(url))
        try:
            return await conn.fetchval("SELECT pg_database_size(current_database())")
        finally:
            await conn.close()

    return asyncio.run(run()) / 2**20


def tasks_table_facts(url: str) -> dict:
    """The server's autovacuum setting and what the run left in the tasks table: a poll
    rewrites its task's row, so with autovacuum off the dead versions pile up in every
    index the claims read."""
    async def run() -> dict:
        conn = await asyncpg.connect(_dsn(url))
        try:
            row = await conn.fetchrow(
                "SELECT n_tup_upd, n_tup_hot_upd, n_dead_tup, autovacuum_count "
                "FROM pg_stat_user_tables WHERE relname = 'tasks'")
            return {"autovacuum": await conn.fetchval("SHOW autovacuum"),
                    **(dict(row) if row else {})}
        finally:
            await conn.close()

    return asyncio.run(run())


@dataclass
class PgCompletionWatcher(BackgroundSampler):
    """Records, for each task, the wall-clock time its `completed` event first appeared."""

    url: str
    interval: float = 0.05
    # Event ids are taken at insert and become visible at commit, so on PostgreSQL a lower
    # id can appear after a higher one was read: each read looks this far back again.
    look_back: int = 2000
    seen: dict[str, float] = field(default_factory=dict)

    def _run(self) -> None:
        asyncio.run(self._watch())

    async def _watch(self) -> None:
        conn = await asyncpg.connect(_dsn(self.url))
        last = 0
        try:
            while not self._stop.is_set():
                rows = await conn.fetch(
                    "SELECT id, task_id FROM task_events WHERE id > $1 AND kind = 'completed' "
                    "ORDER BY id", last - self.look_back)
                now = time.time()
                for row in rows:
                    self.seen.setdefault(row["task_id"], now)
                    last = max(last, row["id"])
                await asyncio.sleep(self.interval)
        finally:
            await conn.close()
