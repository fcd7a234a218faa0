"""New tasks and their holds written to PostgreSQL many per transaction (group commit).

Creates of one key meet on the key's row (the hold takes its lock until the transaction
ends), and each commit waits for the write-ahead log to reach the disk (an autocommitted
insert took 5.9 ms on the benchmark machine against 1.3 ms inside a transaction, bench/
RESULTS.md): one create per commit made every create of a key wait for the flushes of all
those before it. As on SQLite (sqlite_writes), the creates
waiting when the writer comes round go into one transaction, each in its own savepoint so
a refused one (short balance, concurrency limit, reused Idempotency-Key) leaves the others
alone. What each writes and when it is refused is admission.admit, run on asyncpg
(admission.run_asyncpg) through pg_direct's pool.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from .admission import ConcurrencyLimitReached, run_asyncpg
from .ledger import InsufficientBalance
from .pg_direct import PgDirect
from .wakeups import NOTIFY_PG

MAX_BATCH = 256
_REFUSED = (InsufficientBalance, ConcurrencyLimitReached, asyncpg.UniqueViolationError)


@dataclass
class _Insert:
    values: Mapping[str, Any]   # the task row
    max_concurrent: int | None
    future: asyncio.Future


class PgTaskWriter:
    """One asyncio task per event loop that writes the waiting creates, batch by batch."""

    def __init__(self, direct: PgDirect) -> None:
        self._direct = direct
        self._waiting: list[_Insert] = []
        self._writing: asyncio.Task | None = None

    async def insert(self, values: Mapping[str, Any], max_concurrent: int | None) -> None:
        """Insert one task row and take its hold (`values["hold_micro"]`), committed when
        this returns. Raises InsufficientBalance, ConcurrencyLimitReached,
        asyncpg.UniqueViolationError (a reused idempotency key) having written nothing, or
        pg_direct.ConnectionLost (written or not: writes are never retried)."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(_Insert(values, max_concurrent, future))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_waiting())
        await future

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch = self._waiting[:MAX_BATCH]
            del self._waiting[:MAX_BATCH]
            try:
                outcomes = await self._direct.write(functools.partial(_write, batch=batch))
            except Exception as failed:  # the transaction is gone: every create with it
                outcomes = [failed] * len(batch)
            for item, outcome in zip(batch, outcomes, strict=True):
                if item.future.done():  # its caller was cancelled; what was written stays
                    continue
                if outcome is None:
                    item.future.set_result(None)
                else:
                    item.future.set_exception(outcome)


async def _write(conn: asyncpg.Connection, *, batch: Sequence[_Insert]
                 ) -> list[BaseException | None]:
    """The batch inside the caller's transaction; each create's outcome (None: written)."""
    if len(batch) == 1:  # alone: a refusal rolls the whole transaction back, no savepoint
        await run_asyncpg(conn, batch[0].values, batch[0].max_concurrent)
        await _announce(conn)
        return [None]
    outcomes: list[BaseException | None] = []
    await conn.execute("SAVEPOINT one_task")
    for item in batch:
        try:
            await run_asyncpg(conn, item.values, item.max_concurrent)
        except _REFUSED as refused:
            await conn.execute("ROLLBACK TO SAVEPOINT one_task")  # and it stays set
            outcomes.append(refused)
        else:
            # one round trip: keep this create, open the next one's savepoint
            await conn.execute("RELEASE SAVEPOINT one_task; SAVEPOINT one_task")
            outcomes.append(None)
    if None in outcomes:
        await _announce(conn)
    return outcomes


async def _announce(conn: asyncpg.Connection) -> None:
    """NOTIFY listening engines in the batch's transaction (sent on its commit)."""
    await conn.fetchrow(NOTIFY_PG.sql, *NOTIFY_PG.args({}))
