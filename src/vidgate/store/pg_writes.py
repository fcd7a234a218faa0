"""New tasks and their holds written to PostgreSQL many per transaction (group commit), by
several writers at once, each key's creates always by the same one.

Creates of one key meet on the key's row (the hold takes its lock until the transaction
ends), and each commit waits for the write-ahead log to reach the disk (an autocommitted
insert took 5.9 ms on the benchmark machine against 1.3 ms inside a transaction, bench/
RESULTS.md): one create per commit made every create of a key wait for the flushes of all
those before it. As on SQLite (sqlite_writes), the creates waiting when a writer comes round
go into one transaction. What each writes and when it is refused is admission.admit, run on
asyncpg (admission.run_asyncpg) through pg_direct's pool.

A batch was round trips one after another, several per create (the hold's UPDATE, maybe a
ledger row and a count, the INSERT, a savepoint's release), then the commit's flush, while
every other create of the process waited. Now:

- creates of keys without a concurrency limit are written round by round
  (admission.run_asyncpg_together): every create's hold in one pipelined round trip, then
  every INSERT (and ledger row) in another, so a batch is a few round trips whatever its
  size. A limited key's count must see the INSERTs before it, so a batch with a limited
  key's create is written one create after another;
- a batch is first written with no savepoint per create (past 64 savepoints in one
  transaction PostgreSQL's snapshots slow down for every session: its per-process cache of
  subtransactions overflows). On the first refusal (short balance, concurrency limit,
  reused Idempotency-Key) it is rolled back to its start and written again one savepoint
  per create, whose outcomes are the answer, so a refused create writes nothing and the
  others stay;
- the transaction opens with the batch's savepoint and its NOTIFY in BEGIN's round trip
  (the NOTIFY is undone with the batch if nothing is written);
- creates are spread over `WRITERS` writers by their key (a hash of owner_id): a key's
  creates stay on one writer, in order, never wait for another writer's row locks (nor can
  two writers deadlock), while different keys' batches overlap their round trips and
  flushes. Two, not more: on the benchmark machine (PostgreSQL local, two cores) four
  writers split the batches smaller and cost more CPU per create than their overlap won
  back; the overlap is worth more the longer a round trip takes. Each writer holds at most
  one pooled connection at a time.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from .admission import ConcurrencyLimitReached, run_asyncpg, run_asyncpg_together
from .ledger import InsufficientBalance
from .pg_direct import PgDirect
from .wakeups import NOTIFY_SQL

MAX_BATCH = 256
WRITERS = 2  # connections a process writes creates on at once (docs/operations.md)
_REFUSED = (InsufficientBalance, ConcurrencyLimitReached, asyncpg.UniqueViolationError)


@dataclass
class _Insert:
    values: Mapping[str, Any]   # the task row
    max_concurrent: int | None
    future: asyncio.Future


class PgTaskWriter:
    """`writers` writers, each an asyncio task (while it has creates waiting) that writes
    its keys' creates batch by batch."""

    def __init__(self, direct: PgDirect, writers: int = WRITERS) -> None:
        self._writers = [_Writer(direct) for _ in range(writers)]

    def writer_of(self, owner_id: str) -> int:
        """Which writer takes `owner_id`'s creates (stable within a process)."""
        return hash(owner_id) % len(self._writers)

    async def insert(self, values: Mapping[str, Any], max_concurrent: int | None) -> None:
        """Insert one task row and take its hold (`values["hold_micro"]`), committed when
        this returns. Raises InsufficientBalance, ConcurrencyLimitReached,
        asyncpg.UniqueViolationError (a reused idempotency key) having written nothing, or
        pg_direct.ConnectionLost (written or not: writes are never retried)."""
        writer = self._writers[self.writer_of(values["owner_id"])]
        await writer.insert(_Insert(values, max_concurrent,
                                    asyncio.get_running_loop().create_future()))


class _Writer:
    def __init__(self, direct: PgDirect) -> None:
        self._direct = direct
        self._waiting: list[_Insert] = []
        self._writing: asyncio.Task | None = None

    async def insert(self, item: _Insert) -> None:
        self._waiting.append(item)
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write_waiting())
        await item.future

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch = self._waiting[:MAX_BATCH]
            del self._waiting[:MAX_BATCH]
            try:
                # the batch's transaction opens with its announcement (undone if no create
                # is written) and, for several, the savepoint of the batch, in one round trip
                opening = (NOTIFY_SQL if len(batch) == 1
                           else f"SAVEPOINT batch; {NOTIFY_SQL}")
                outcomes = await self._direct.write(functools.partial(_write, batch=batch),
                                                    opening=opening)
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
    """The batch inside the caller's transaction, opened as _write_waiting opens it; each
    create's outcome (None: written)."""
    if len(batch) == 1:  # alone: a refusal rolls the whole transaction back, no savepoint
        await run_asyncpg(conn, batch[0].values, batch[0].max_concurrent)
        return [None]
    try:
        if all(item.max_concurrent is None for item in batch):
            written = await run_asyncpg_together(conn, [item.values for item in batch])
        else:
            for item in batch:
                await run_asyncpg(conn, item.values, item.max_concurrent)
            written = True
    except _REFUSED:
        written = False
    if not written:
        await conn.execute("ROLLBACK TO SAVEPOINT batch")  # its announcement too
        return await _write_one_by_one(conn, batch)
    return [None] * len(batch)


async def _write_one_by_one(conn: asyncpg.Connection, batch: Sequence[_Insert]
                            ) -> list[BaseException | None]:
    """The batch again, each create in its own savepoint, so a refused one writes nothing
    and the others stay; announced if any is written."""
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
        await conn.execute(NOTIFY_SQL)  # listening engines hear it on commit
    return outcomes
