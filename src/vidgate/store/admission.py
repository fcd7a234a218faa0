"""Whether a new task may be written: its hold, the key's concurrency limit, the row.

The rule is written once, as a generator that yields statements and is sent back each one's
first result row, so it does no I/O of its own. Three writers drive it: `run_async` on a
SQLAlchemy connection (SQLite without a file), the SQLite group-commit thread
(sqlite_writes) and `run_asyncpg` on PostgreSQL (pg_direct), which run the same statements
compiled once for `sqlite3` and for asyncpg.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ..domain import ACTIVE
from . import wakeups
from .compiled import compile_pg, compile_sqlite
from .ledger import HOLD, InsufficientBalance
from .schema import api_keys, ledger, tasks

TASK_COLUMNS = [c.key for c in tasks.c if c.key != "seq"]  # `seq` is the database's


class ConcurrencyLimitReached(Exception):
    """The key already has `max_concurrent` unfinished tasks."""

    def __init__(self, active: int) -> None:
        super().__init__(active)
        self.active = active


# A limited key's balance must cover the hold; the row is touched even for unlimited keys,
# which serialises concurrent creates of one key, so the count after it cannot be raced.
TAKE_HOLD = (
    api_keys.update()
    .where(api_keys.c.id == sa.bindparam("owner_id"),
           sa.or_(api_keys.c.balance_micro.is_(None),
                  api_keys.c.balance_micro >= sa.bindparam("hold")))
    .values(balance_micro=api_keys.c.balance_micro - sa.bindparam("hold"))  # NULL stays NULL
    .returning(api_keys.c.balance_micro)
)
HOLD_ROW = ledger.insert().values(
    key_id=sa.bindparam("owner_id"), task_id=sa.bindparam("task_id"), kind=HOLD,
    amount_micro=sa.bindparam("amount"), created_at=sa.bindparam("now"), note=None,
)
ACTIVE_COUNT = sa.select(sa.func.count()).select_from(tasks).where(
    tasks.c.owner_id == sa.bindparam("owner_id"),
    # the statuses written into the SQL, not parameters: one fixed string to prepare, and
    # a generic plan of that prepared statement can still use the partial index of
    # unfinished rows by owner (migration 0006), whose condition names these literals
    tasks.c.status.in_([sa.literal_column(f"'{s.value}'") for s in ACTIVE]),
    tasks.c.deleted_at.is_(None),
)
INSERT_TASK = tasks.insert()

# The same statements for sqlite3 and for asyncpg, compiled once (none returns a number
# that asyncpg's dialect converts by its database type, so no types are needed here).
SQLITE, POSTGRES = (
    {TAKE_HOLD: compile_with(TAKE_HOLD),
     HOLD_ROW: compile_with(HOLD_ROW),
     ACTIVE_COUNT: compile_with(ACTIVE_COUNT),
     INSERT_TASK: compile_with(INSERT_TASK, column_keys=TASK_COLUMNS, table=tasks)}
    for compile_with in (compile_sqlite, compile_pg))

Step = tuple[sa.Executable, Mapping[str, Any]]


def admit(row: Mapping[str, Any], max_concurrent: int | None
          ) -> Generator[Step, tuple[Any, ...] | None, None]:
    """Take the hold (`row["hold_micro"]`), check the concurrency limit, insert the task row.

    Raises InsufficientBalance or ConcurrencyLimitReached; the caller rolls back, so a
    refused create writes nothing.
    """
    owner, hold = row["owner_id"], row["hold_micro"]
    balance = yield TAKE_HOLD, {"owner_id": owner, "hold": hold}
    if balance is None:
        raise InsufficientBalance(owner)
    if balance[0] is not None and hold > 0:
        yield HOLD_ROW, {"owner_id": owner, "task_id": row["id"], "amount": -hold,
                         "now": int(time.time())}
    if max_concurrent is not None:
        counted = yield ACTIVE_COUNT, {"owner_id": owner}
        active = counted[0] if counted else 0
        if active >= max_concurrent:
            raise ConcurrencyLimitReached(active)
    yield INSERT_TASK, row


async def _drive(row: Mapping[str, Any], max_concurrent: int | None,
                 execute: Callable[[sa.Executable, Mapping[str, Any]], Awaitable[Any]]) -> None:
    """Run `admit`'s statements one after another with `execute` (-> the first row)."""
    steps = admit(row, max_concurrent)
    answer = None
    while True:
        try:
            stmt, params = steps.send(answer)
        except StopIteration:
            return
        answer = await execute(stmt, params)


async def run_async(conn: AsyncConnection, row: Mapping[str, Any],
                    max_concurrent: int | None) -> None:
    async def execute(stmt: sa.Executable, params: Mapping[str, Any]) -> Any:
        result = await conn.execute(stmt, params)
        return result.first() if result.returns_rows else None

    await _drive(row, max_concurrent, execute)
    await conn.run_sync(wakeups.announce)  # on PostgreSQL, engines elsewhere start at once


async def run_asyncpg(conn: Any, row: Mapping[str, Any], max_concurrent: int | None) -> None:
    """The same on an asyncpg connection, inside the caller's transaction."""
    async def execute(stmt: sa.Executable, params: Mapping[str, Any]) -> Any:
        compiled = POSTGRES[stmt]
        return await conn.fetchrow(compiled.sql, *compiled.args(params))

    await _drive(row, max_concurrent, execute)


async def run_asyncpg_together(conn: Any, rows: Sequence[Mapping[str, Any]]) -> bool:
    """Several creates of keys without a concurrency limit on one asyncpg connection, inside
    the caller's transaction, round by round: each create's first statement, then each
    one's next, every statement of a round one round trip for all (asyncpg's fetchmany and
    executemany send a statement's runs as one pipeline). Returns False, having written
    part of them, if a hold could not be taken: the caller rolls back. Raises
    asyncpg.UniqueViolationError (a reused idempotency key) likewise.

    The same writes as `run_asyncpg` one create after another, in order: what a round's
    statement reads was written only by statements of its own kind, which ran for the
    creates before it (the hold's UPDATE reads the balances earlier holds left, the INSERT
    the unique keys of earlier INSERTs). A limit's count would read INSERTs of a later
    round, so limited keys are written one after another."""
    running = [admit(row, None) for row in rows]
    steps = [(create, next(create)) for create in running]
    while steps:
        rounds: dict[sa.Executable, list[tuple[Generator, Mapping[str, Any]]]] = {}
        for create, (stmt, params) in steps:
            rounds.setdefault(stmt, []).append((create, params))
        steps = []
        for stmt, group in rounds.items():
            compiled = POSTGRES[stmt]
            args = [compiled.args(params) for _, params in group]
            if compiled.columns:  # one row per run (a hold's UPDATE by key), or none
                answers = await conn.fetchmany(compiled.sql, args)
                if len(answers) != len(group):
                    return False
            else:
                await conn.executemany(compiled.sql, args)
                answers = [None] * len(group)
            for (create, _), answer in zip(group, answers, strict=True):
                try:
                    steps.append((create, create.send(answer)))
                except StopIteration:
                    pass
    return True


def run_sqlite(conn: Any, row: Mapping[str, Any], max_concurrent: int | None) -> None:
    """The same on a `sqlite3` connection, inside the caller's transaction."""
    steps = admit(row, max_concurrent)
    answer = None
    while True:
        try:
            stmt, params = steps.send(answer)
        except StopIteration:
            return
        compiled = SQLITE[stmt]
        answer = conn.execute(compiled.sql, compiled.params(params)).fetchone()
