"""Where every write but a create runs: one function of a SQLAlchemy connection, one
transaction.

A write is written once, as a plain function of a sync `sa.Connection` that runs Core
statements and returns plain values (rows already fetched, counts), never a live result. On
PostgreSQL and on SQLite without a file it runs in a transaction of its own on a pooled
connection (`AsyncConnection.run_sync`: one hop into SQLAlchemy for the whole function, not
one per statement). On an SQLite file it goes to the process's one writer thread
(sqlite_writes.SqliteWriter), the thread that also writes new tasks: SQLite has one writer
at a time, and two connections of one process meeting on its write lock was what stalled the
engine and provider callbacks (bench/RESULTS.md, "Engine scale with provider callbacks").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from .sqlite_writes import SqliteWriter

T = TypeVar("T")
Write = Callable[[sa.Connection], T]


class Writes:
    def __init__(self, engine: AsyncEngine, sqlite: SqliteWriter | None = None) -> None:
        self.engine = engine
        self._sqlite = sqlite  # the writer thread of an SQLite file, if there is one

    async def run(self, write: Write[T]) -> T:
        """Run `write` in one transaction, committed when this returns; what it raises is
        raised here, having written nothing."""
        if self._sqlite is not None:
            return await self._sqlite.call(write)
        async with self.engine.begin() as conn:
            return await conn.run_sync(write)
