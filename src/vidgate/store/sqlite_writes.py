"""Every write of a process to an SQLite file, made by one thread, many per transaction.

SQLite has one writer at a time. With two connections of one process writing (aiosqlite's
pooled one for the engine and callbacks, this thread's for creates), they met on SQLite's
write lock: the busy handler sleeps, growing sleeps, the pooled connection was held through
the wait, and at 10,000 tasks with provider callbacks completions lagged by minutes (bench/
RESULTS.md). So this thread is the process's only writer: it writes new tasks and runs every
other write (store/writes.py: the engine's claims, renewals, hand-backs and endings, a
callback's `make_due`, deletes, keys, the outbox).

Whatever is waiting when the thread comes round goes into one transaction (group commit),
each write inside its own savepoint, so one refused or failed write (short balance,
concurrency limit, reused Idempotency-Key, a lost lease's error) leaves the others alone; its
caller hears of it once the batch has committed. A create is admission.admit, the rule every
database uses, run with its statements compiled once for `sqlite3` (through the async
adapter a create was four round trips, and that queue, not the CPU, limited creates); any
other write is a function of a SQLAlchemy connection wrapping this thread's own `sqlite3`
connection. The transaction is begun IMMEDIATE and controlled through SQLAlchemy, so a
database another process keeps locked past the busy timeout raises SQLAlchemy's
OperationalError (store/database.is_unreachable: a 503, the engine's next tick retries).
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

from .admission import ConcurrencyLimitReached, run_sqlite
from .compiled import JSON_DESERIALIZER
from .ledger import InsufficientBalance

MAX_BATCH = 256
T = TypeVar("T")


@dataclass
class _Insert:
    values: dict[str, Any]   # the task row
    max_concurrent: int | None
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


@dataclass
class _Call:
    write: Callable[[sa.Connection], Any]   # store/writes.py's write function
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


_Item = _Insert | _Call


class SqliteWriter:
    """A thread with its own sqlite3 connection that makes all of a process's writes."""

    def __init__(self, path: str, busy_timeout_seconds: float = 30.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout_seconds
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def insert(self, values: dict[str, Any], max_concurrent: int | None) -> None:
        """Insert one task row and take its hold (`values["hold_micro"]`), committed when
        this returns. Raises InsufficientBalance, ConcurrencyLimitReached or
        sqlite3.IntegrityError (a reused idempotency key), having written nothing."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._put(_Insert(values, max_concurrent, future, loop))
        await future

    async def call(self, write: Callable[[sa.Connection], T]) -> T:
        """Run `write` on this thread's connection, committed when this returns; what it
        raises is raised here, having written nothing."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._put(_Call(write, future, loop))
        return await future

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _put(self, item: _Item) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="vidgate-sqlite-writer", daemon=True)
                    self._thread.start()
        self._queue.put(item)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: sqlite3 begins nothing by itself; the "begin" event below does
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")  # as Database's own connections
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def _run(self) -> None:
        engine = sa.create_engine("sqlite://", creator=self._connect, poolclass=StaticPool,
                                  json_deserializer=JSON_DESERIALIZER)
        # SQLAlchemy's own BEGIN is sqlite3's deferred one, which takes the write lock only
        # at the first write: take it at once, so no statement of a batch waits for it
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        try:
            with engine.connect() as conn:
                while (first := self._queue.get()) is not None:
                    batch = [first]
                    while len(batch) < MAX_BATCH:
                        try:
                            item = self._queue.get_nowait()
                        except queue.Empty:
                            break
                        if item is None:
                            self._queue.put(None)  # stop after this batch
                            break
                        batch.append(item)
                    for item, outcome in zip(batch, _write(conn, batch), strict=True):
                        item.loop.call_soon_threadsafe(_settle, item.future, outcome)
        finally:
            engine.dispose()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_REFUSED = (InsufficientBalance, ConcurrencyLimitReached, sqlite3.IntegrityError)


def _write(conn: sa.Connection, batch: Sequence[_Item]) -> list[Any]:
    """One transaction for the batch; each write's outcome (its result, or _Failed)."""
    outcomes: list[Any] = []
    try:
        with conn.begin():
            raw = conn.connection.driver_connection
            for item in batch:
                raw.execute("SAVEPOINT one_write")
                try:
                    if isinstance(item, _Insert):
                        try:
                            run_sqlite(raw, item.values, item.max_concurrent)
                        except _REFUSED as refused:
                            outcome: Any = _Failed(refused)
                        else:
                            outcome = None
                    else:
                        outcome = item.write(conn)
                except Exception as failed:  # its caller's to handle
                    outcome = _Failed(failed)
                if isinstance(outcome, _Failed):
                    # fails in turn (no such savepoint) when SQLite has already rolled the
                    # whole transaction back (disk full, I/O error): then the batch fails
                    raw.execute("ROLLBACK TO one_write")
                raw.execute("RELEASE one_write")
                outcomes.append(outcome)
    except Exception as failed:  # the whole transaction is gone: every write fails with it
        return [_Failed(failed)] * len(batch)
    return outcomes


def _settle(future: asyncio.Future, outcome: Any) -> None:
    if future.done():  # the caller was cancelled; what was written stays written
        return
    if isinstance(outcome, _Failed):
        future.set_exception(outcome.error)
    else:
        future.set_result(outcome)
