"""The database: engine set-up, migrations, and the stores that share one connection pool.

SQLite (aiosqlite) by default, PostgreSQL (asyncpg) when VIDGATE_DATABASE_URL says so; on
either, the hot statements (one-row reads, new tasks) skip SQLAlchemy's execution on a
driver of their own (sqlite_reads and sqlite_writes, pg_direct). Every other write is a
function of one connection run by `writes` (writes.py); on an SQLite file that is the same
thread that writes new tasks, the process's only writer, so the pool there serves reads. The
work is split by job: `keys` (keys.py: keys and their accounts), `tasks` (tasks.py: what the
API reads and writes), `leases` (leases.py: what the engine claims and finishes). The few
methods below that forward to them are what the HTTP layer and the CLI call.
"""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..domain import ApiKey, Task
from .characters import Characters
from .compiled import JSON_DESERIALIZER
from .keys import Keys
from .leases import Leases
from .pg_direct import CONNECT_TIMEOUT, PgDirect
from .pg_writes import PgTaskWriter
from .sqlite_reads import SqliteRows, sqlite_file
from .sqlite_writes import SqliteWriter
from .tasks import Tasks
from .writes import Writes

# PostgreSQL connections of SQLAlchemy's pool per process, opened as needed and kept
# (docs/operations.md counts them against max_connections)
POOL_SIZE = 30

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class Database:
    def __init__(self, url: str, *, charge_overage: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"json_deserializer": JSON_DESERIALIZER}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
            # SQLite has one writer at a time. With several pooled connections, this
            # process's concurrent writers met in SQLite's busy handler, which sleeps and
            # retries (creates at 32 clients had p99 1.1 s before they got their own writer
            # below); one connection makes them wait their turn in asyncio instead. On a
            # file the writer thread makes every write, and this connection only reads.
            kwargs.update(pool_size=1, max_overflow=0)
        else:
            # No pool_pre_ping (a round trip on every checkout of the hot path): a read on a
            # pooled connection the server has dropped is retried once instead (below).
            # Every connection opened is kept (no overflow): an overflow connection is closed
            # when it goes back, and an engine ending ~50 tasks at once opened one for every
            # fourth ending (a new server process, TLS negotiation, the codecs' set-up).
            kwargs.update(pool_size=POOL_SIZE, max_overflow=0,
                          connect_args={"timeout": CONNECT_TIMEOUT})
        self.engine: AsyncEngine = ReadRetryingEngine(
            create_async_engine(url, **kwargs).sync_engine)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        # On an SQLite file, one-row reads skip the async adapter (see sqlite_reads),
        # and one thread makes every write, new tasks in batches (see sqlite_writes); on
        # PostgreSQL reads run on asyncpg's own pool (see pg_direct) and new tasks are
        # batched on it (see pg_writes).
        path = sqlite_file(url) if self.is_sqlite else None
        self._rows: SqliteRows | PgDirect | None = SqliteRows(path) if path else None
        self._writer: SqliteWriter | PgTaskWriter | None = SqliteWriter(path) if path else None
        self.writes = Writes(self.engine,
                             self._writer if isinstance(self._writer, SqliteWriter) else None)
        if url.startswith("postgresql+asyncpg"):
            direct = PgDirect(url)
            self._rows, self._writer = direct, PgTaskWriter(direct)
        self.keys = Keys(self.engine, self.writes, self._rows)
        self.tasks = Tasks(self.engine, self.writes, self._rows, self._writer)
        self.leases = Leases(self.engine, self.writes, charge_overage=charge_overage,
                             direct=self._rows if isinstance(self._rows, PgDirect) else None)
        self.characters = Characters(self.engine, self.writes, self._rows)

    async def close(self) -> None:
        if isinstance(self._writer, SqliteWriter):
            await asyncio.to_thread(self._writer.close)
        if isinstance(self._rows, SqliteRows):
            self._rows.close()
        elif self._rows is not None:
            await self._rows.close()
        await self.engine.dispose()

    async def migrate(self) -> None:
        """Bring the schema to the newest revision; safe to run from many processes at once."""
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7164720113)"))
            await conn.run_sync(_upgrade)

    # ---- what the HTTP layer and the CLI call -------------------------------------------

    async def create_key(self, name: str = "", **settings: Any) -> tuple[ApiKey, str]:
        return await self.keys.create(name, **settings)

    async def key_for_hash(self, digest: str) -> ApiKey | None:
        return await self.keys.for_hash(digest)

    async def get_key(self, key_id: str) -> ApiKey | None:
        return await self.keys.get(key_id)

    async def list_keys(self) -> list[ApiKey]:
        return await self.keys.list()

    async def revoke_key(self, key_or_id: str) -> bool:
        return await self.keys.revoke(key_or_id)

    async def get_task(self, task_id: str, owner_id: str | None = None) -> Task | None:
        return await self.tasks.get(task_id, owner_id)

    async def events(self, task_id: str | None = None) -> list[tuple[str, str]]:
        return await self.tasks.events(task_id)


def is_unreachable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection: a fault of the moment,
    not of the request (the API answers 503 with Retry-After; the engine tries again). A pool
    with no free connection for its whole timeout counts too: the database is swamped."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))
    if isinstance(exc, StatementError) and isinstance(exc.orig, BaseException):
        # a pooled connection found dead, whose reconnect failed: SQLAlchemy wraps the
        # driver's connect error (ConnectionRefusedError...) in a bare StatementError
        return is_unreachable(exc.orig)
    # asyncpg's connect raises these unwrapped when nothing listens or the server hangs up;
    # pg_direct raises its ConnectionLost, a ConnectionError
    return isinstance(exc, (ConnectionError, TimeoutError)) or (
        isinstance(exc, OSError) and exc.errno in _CONNECT_ERRNOS)


_CONNECT_ERRNOS = {errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH,
                   errno.ENETUNREACH, errno.ETIMEDOUT}


class ReadRetryingConnection(AsyncConnection):
    """A connection whose first read, if it finds the pooled connection dead (server
    restarted, `pg_terminate_backend`, a proxy dropped), runs once more on a fresh one.

    Only a SELECT that opens the connection's (implicit) transaction is retried: nothing ran
    before it, so running it again is the same read. Writes and statements inside an explicit
    `begin()` are not: their caller decides (the engine retries at its next tick; the API
    answers 503, see api/errors.py). A dead connection makes SQLAlchemy invalidate the whole
    pool, so one failed read per pool is what a restart costs, caught here.
    """

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        first_read = not self.in_transaction() and getattr(statement, "is_select", False)
        try:
            return await super().execute(statement, *args, **kwargs)
        except DBAPIError as exc:
            if not (first_read and exc.connection_invalidated):
                raise
        await self.rollback()  # leave the invalidated connection; the next use reconnects
        return await super().execute(statement, *args, **kwargs)


class ReadRetryingEngine(AsyncEngine):
    _connection_cls = ReadRetryingConnection


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _upgrade(sync_conn: Any) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")
