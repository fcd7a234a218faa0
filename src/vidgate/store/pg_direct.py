"""The hot statements on PostgreSQL, on plain `asyncpg` connections: the reads of a status
read and of a create (lent from a free list, `_Reads`), and new tasks (pg_writes, on an
asyncpg pool).

Through SQLAlchemy's async adapter every read on PostgreSQL was three round trips (the
adapter's BEGIN, the SELECT, the ROLLBACK when the connection went back to the pool) plus
the adapter's layers on the event loop, and a create made two such reads (its key, its
characters) before its own transaction. Here a read is the same Core statement, compiled
once for asyncpg (compiled.py), run as a prepared statement (asyncpg prepares each SQL text
once per connection and keeps it, `statement_cache_size`) with no transaction around it:
one round trip. JSON columns are decoded by a codec set once per connection (orjson), so a
row comes back converted as SQLAlchemy would convert it.

The rules of the SQLAlchemy path hold here too: a read whose pooled connection turns out to
be dead (server restarted, `pg_terminate_backend`) runs once more on a fresh connection;
writes are never retried; a database out of reach raises `ConnectionLost`, a
`ConnectionError`, which `database.is_unreachable` turns into the API's 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from .compiled import JSON_DESERIALIZER, POSTGRES, Compiled, compile_for, sql_of

T = TypeVar("T")
# Seconds a new connection may take (TCP, TLS, start-up) before the database counts as out
# of reach (503): asyncpg's own default is 60 s, a minute of hanging requests when the
# server's host is gone without a reset.
CONNECT_TIMEOUT = 10.0

# What asyncpg raises when no connection can be made: nothing listens, the server is
# starting or shutting down, or it has no connection slot left.
_CANNOT_CONNECT = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError,
                   asyncpg.exceptions.OperatorInterventionError,
                   asyncpg.exceptions.TooManyConnectionsError)


class ConnectionLost(ConnectionError):
    """PostgreSQL could not be reached, or (`midway`) the connection died under a
    statement."""

    def __init__(self, message: str, *, midway: bool = False) -> None:
        super().__init__(message)
        self.midway = midway


def asyncpg_dsn(url: str) -> str:
    """`postgresql+asyncpg://...` as asyncpg's own `postgresql://...`."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _set_codecs(conn: asyncpg.Connection) -> None:
    # As SQLAlchemy's asyncpg dialect sets them (binary format, text written by the JSON
    # column's own bind processor), with orjson, which takes the bytes as they come.
    await conn.set_type_codec("json", schema="pg_catalog", format="binary",
                              encoder=str.encode, decoder=JSON_DESERIALIZER)
    await conn.set_type_codec("jsonb", schema="pg_catalog", format="binary",
                              encoder=lambda text: b"\x01" + text.encode(),
                              decoder=lambda data: JSON_DESERIALIZER(data[1:]))


async def _reset(conn: asyncpg.Connection) -> None:
    """Nothing on this pool changes session state, so a connection goes back as it is, but
    never inside a transaction (asyncpg's default reset is one more round trip per use)."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class PgDirect:
    """Connections of its own for the hot statements (up to `max_size` for reads and as many
    for transactions, opened on first use; pg_writes' create writers use one each at a time,
    `pg_writes.WRITERS` at most); everything else stays on SQLAlchemy's pool."""

    def __init__(self, url: str, *, max_size: int = 10) -> None:
        self.dsn = asyncpg_dsn(url)
        self.max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Lock | None = None
        self._compiled: dict[sa.Executable, Compiled] = {}
        self._reads = _Reads(self._connect, max_size)

    async def one(self, stmt: sa.Select, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row of `stmt` as {column: value}, or None; one round trip."""
        found = await self._read(stmt, values, first=True)
        return None if found is None else found[0]

    async def all(self, stmt: sa.Select, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row of `stmt`, each as {column: value}; one round trip."""
        return await self._read(stmt, values, first=False)

    async def _read(self, stmt: sa.Select, values: Mapping[str, Any], *, first: bool
                    ) -> list[dict[str, Any]] | None:
        async def read(conn: asyncpg.Connection) -> list[dict[str, Any]] | None:
            compiled = self._compiled.get(stmt) or await self._compile(conn, stmt)
            args = compiled.args(values)
            if first:
                found = await conn.fetchrow(compiled.sql, *args)
                return None if found is None else [compiled.row(found)]
            return [compiled.row(row) for row in await conn.fetch(compiled.sql, *args)]

        await self._pool_here()  # the reads' connections belong to the running loop too
        try:
            return await self._reads.run(read)
        except ConnectionLost as lost:
            if not lost.midway:
                raise
        return await self._reads.run(read)  # once more, on a fresh connection

    async def run(self, stmt: sa.Executable, values: Mapping[str, Any]
                  ) -> list[dict[str, Any]]:
        """`stmt` alone, its own transaction (one statement commits by itself: no BEGIN
        and COMMIT round trips around it); its rows, if it returns any. Never retried."""
        async def run(conn: asyncpg.Connection) -> list[dict[str, Any]]:
            compiled = self._compiled.get(stmt) or await self._compile(conn, stmt)
            return [compiled.row(row)
                    for row in await conn.fetch(compiled.sql, *compiled.args(values))]

        return await self._on_a_connection(run)

    async def run_many(self, stmt: sa.Executable, rows: list[Mapping[str, Any]]) -> None:
        """`stmt` once per row of parameters, pipelined in one round trip and one
        transaction (asyncpg's executemany is all or nothing). Never retried."""
        async def run(conn: asyncpg.Connection) -> None:
            compiled = self._compiled.get(stmt) or await self._compile(conn, stmt)
            await conn.executemany(compiled.sql, [compiled.args(row) for row in rows])

        await self._on_a_connection(run)

    async def write(self, work: Callable[[asyncpg.Connection], Awaitable[T]], *,
                    opening: str = "") -> T:
        """`work(conn)` inside one transaction, never retried: a connection lost midway
        raises ConnectionLost and the caller cannot know whether it was committed.
        `opening`: statements without parameters that start the transaction, sent in the
        BEGIN's round trip."""
        async def in_transaction(conn: asyncpg.Connection) -> T:
            await conn.execute(f"BEGIN; {opening}" if opening else "BEGIN")
            try:
                result = await work(conn)
            except Exception:
                if not conn.is_closed():
                    await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")
            return result

        return await self._on_a_connection(in_transaction)

    async def _on_a_connection(self, work: Callable[[asyncpg.Connection], Awaitable[T]]
                               ) -> T:
        """`work(conn)` on a pooled connection; ConnectionLost when none could be had, or
        (`midway`) when it died under `work`."""
        pool = await self._pool_here()
        try:
            async with pool.acquire() as conn:
                try:
                    return await work(conn)
                except Exception as exc:
                    if not _dead(conn):
                        raise
                    lost = exc
        except _CANNOT_CONNECT as exc:
            raise ConnectionLost(str(exc)) from exc
        # The pool's other idle connections most likely died with this one (a restart):
        # replace them all, as SQLAlchemy invalidates its pool.
        await pool.expire_connections()
        raise ConnectionLost(str(lost), midway=True) from lost

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            if self._loop is asyncio.get_running_loop():
                await self._reads.close()
                await pool.close()
            else:
                self._reads.terminate()
                pool.terminate()

    async def _pool_here(self) -> asyncpg.Pool:
        """The pool of the running event loop (asyncpg's connections belong to one loop)."""
        loop = asyncio.get_running_loop()
        if self._pool is not None and self._loop is loop:
            return self._pool
        if self._opening is None or self._loop is not loop:
            self._opening, self._loop = asyncio.Lock(), loop
            if self._pool is not None:
                self._pool.terminate()  # left by an earlier loop, which cannot close it now
                self._reads.terminate()
                self._pool = None
            self._reads = _Reads(self._connect, self.max_size)
        async with self._opening:
            if self._pool is None:
                try:
                    self._pool = await asyncpg.create_pool(
                        self.dsn, min_size=0, max_size=self.max_size, init=_set_codecs,
                        reset=_reset)
                except _CANNOT_CONNECT as exc:
                    raise ConnectionLost(str(exc)) from exc
        return self._pool

    async def _connect(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT)
        await _set_codecs(conn)
        return conn

    async def _compile(self, conn: asyncpg.Connection, stmt: sa.Executable) -> Compiled:
        """Compile `stmt` once (`compile_on`)."""
        compiled = self._compiled[stmt] = await compile_on(conn, stmt)
        return compiled


async def compile_on(conn: asyncpg.Connection, stmt: sa.Executable) -> Compiled:
    """`stmt` as asyncpg runs it; its numbers are converted by the column types PostgreSQL
    reports for its result, as SQLAlchemy converts them by the cursor's description."""
    prepared = await conn.prepare(sql_of(POSTGRES, stmt))
    coltypes = [attr.type.oid for attr in prepared.get_attributes()]
    return compile_for(POSTGRES, stmt, coltypes=coltypes)


class _Reads:
    """Connections for single-statement reads, lent from a free list. asyncpg's pool costs
    ~45 us of CPU per use (each release makes a task, a shield and a timeout), a third of a
    read's own cost; a read needs no reset, so a list and a semaphore do."""

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], size: int
                 ) -> None:
        self._connect = connect
        self._slots = asyncio.Semaphore(size)  # at most `size` open, all lent at most
        self._idle: list[asyncpg.Connection] = []

    async def run(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`work(conn)`; ConnectionLost when no connection could be made, or (`midway`)
        when the connection died under `work`."""
        async with self._slots:
            conn = self._idle.pop() if self._idle else None
            if conn is None or conn.is_closed():
                try:
                    conn = await self._connect()
                except _CANNOT_CONNECT as exc:
                    raise ConnectionLost(str(exc)) from exc
            try:
                result = await work(conn)
            except Exception as exc:
                if not _dead(conn):
                    self._idle.append(conn)  # the statement failed, not the connection
                    raise
                # the others most likely died with it (a restart): replace them all
                self.terminate()
                raise ConnectionLost(str(exc), midway=True) from exc
            except BaseException:  # cancelled mid-statement: its answer may still come
                conn.terminate()
                raise
            self._idle.append(conn)
            return result

    def terminate(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.terminate()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()


def _dead(conn: Any) -> bool:
    """Whether a statement failed because its connection died (as SQLAlchemy's asyncpg
    dialect decides it: the connection is closed afterwards), not because of the statement."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:  # the pool already took back the connection that died
        return True
