"""New tasks and their holds written to SQLite by one thread, many per transaction.

SQLite has one writer at a time, so concurrent creates queue for it. Through SQLAlchemy's
async adapter a create is four round trips to aiosqlite's thread (begin, hold, insert,
commit) made one after another, and that queue, not the CPU, limited creates (bench/
RESULTS.md). Here every create waiting when the writer comes round goes into the same
transaction (group commit), each inside its own savepoint so one refused create (short
balance, concurrency limit, reused Idempotency-Key) leaves the others alone. What each create
writes and when it is refused is admission.admit, the rule every database uses, run here with
its statements compiled once for `sqlite3`.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .admission import ConcurrencyLimitReached, run_sqlite
from .ledger import InsufficientBalance

MAX_BATCH = 256


@dataclass
class _Insert:
    values: dict[str, Any]   # the task row
    max_concurrent: int | None
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class SqliteTaskWriter:
    """A thread with its own sqlite3 connection that inserts tasks in batches."""

    def __init__(self, path: str, busy_timeout_seconds: float = 30.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout_seconds
        self._queue: queue.SimpleQueue[_Insert | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def insert(self, values: dict[str, Any], max_concurrent: int | None) -> None:
        """Insert one task row and take its hold (`values["hold_micro"]`), committed when
        this returns. Raises InsufficientBalance, ConcurrencyLimitReached or
        sqlite3.IntegrityError (a reused idempotency key), having written nothing."""
        self._start()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Insert(values, max_concurrent, future, loop))
        await future

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="vidgate-sqlite-writer",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")  # as Database's own connections (WAL)
        try:
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
            conn.close()


def _write(conn: sqlite3.Connection, batch: Sequence[_Insert]) -> list[BaseException | None]:
    """One transaction for the batch; each insert's outcome (None when written)."""
    outcomes: list[BaseException | None] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        for item in batch:
            conn.execute("SAVEPOINT one_task")
            try:
                run_sqlite(conn, item.values, item.max_concurrent)
            except (InsufficientBalance, ConcurrencyLimitReached, sqlite3.IntegrityError
                    ) as refused:
                conn.execute("ROLLBACK TO one_task")
                outcomes.append(refused)
            else:
                outcomes.append(None)
            conn.execute("RELEASE one_task")
        conn.execute("COMMIT")
    except Exception as failed:  # the whole transaction is gone: every insert fails with it
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return [failed] * len(batch)
    return outcomes


def _settle(future: asyncio.Future, outcome: BaseException | None) -> None:
    if future.done():  # the caller was cancelled; what was written stays written
        return
    if outcome is None:
        future.set_result(None)
    else:
        future.set_exception(outcome)
