"""New tasks and their holds written to SQLite by one thread, many per transaction.

SQLite has one writer at a time, so concurrent creates queue for it. Through SQLAlchemy's
async adapter a create is four round trips to aiosqlite's thread (begin, hold, insert,
commit) made one after another, and that queue, not the CPU, limited creates (bench/
RESULTS.md). Here every create waiting when the writer comes round goes into the same
transaction (group commit), each inside its own savepoint so one refused create (short
balance, concurrency limit, reused Idempotency-Key) leaves the others alone. The rules are
those of `ledger.take_hold` and `Database.insert_task` on PostgreSQL; the whole test suite runs
on both databases to hold them to it.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..domain import ACTIVE

MAX_BATCH = 256

_TAKE_HOLD = (
    "UPDATE api_keys SET balance_micro = balance_micro - ? "
    "WHERE id = ? AND (balance_micro IS NULL OR balance_micro >= ?) RETURNING balance_micro"
)
_HOLD_ROW = (
    "INSERT INTO ledger (key_id, task_id, kind, amount_micro, created_at, note) "
    "VALUES (?, ?, 'hold', ?, ?, NULL)"
)
_ACTIVE_COUNT = (
    "SELECT count(*) FROM tasks WHERE owner_id = ? AND deleted_at IS NULL "
    f"AND status IN ({', '.join(repr(s) for s in ACTIVE)})"
)


class HoldRefused(Exception):
    """The key's balance is short of the hold."""


class TooManyActive(Exception):
    def __init__(self, active: int) -> None:
        super().__init__(active)
        self.active = active


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
        this returns. Raises HoldRefused, TooManyActive or sqlite3.IntegrityError (a reused
        idempotency key), having written nothing."""
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
                _insert_one(conn, item)
            except (HoldRefused, TooManyActive, sqlite3.IntegrityError) as refused:
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


def _insert_one(conn: sqlite3.Connection, item: _Insert) -> None:
    values = item.values
    owner, task_id, hold = values["owner_id"], values["id"], values["hold_micro"]
    # Touches the key row even for unlimited keys, as ledger.take_hold does.
    row = conn.execute(_TAKE_HOLD, (hold, owner, hold)).fetchone()
    if row is None:
        raise HoldRefused(owner)
    if row[0] is not None and hold > 0:
        conn.execute(_HOLD_ROW, (owner, task_id, -hold, int(time.time())))
    if item.max_concurrent is not None:
        active = conn.execute(_ACTIVE_COUNT, (owner,)).fetchone()[0]
        if active >= item.max_concurrent:
            raise TooManyActive(active)
    columns = list(values)
    conn.execute(
        f"INSERT INTO tasks ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
        [_column_value(values[c]) for c in columns],
    )


def _column_value(value: Any) -> Any:
    """As SQLAlchemy stores it on SQLite: JSON columns as JSON text, booleans as 0/1."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _settle(future: asyncio.Future, outcome: BaseException | None) -> None:
    if future.done():  # the caller was cancelled; what was written stays written
        return
    if outcome is None:
        future.set_result(None)
    else:
        future.set_exception(outcome)
