"""New work, announced: on PostgreSQL, whoever writes a task the engine should look at now
says so with NOTIFY in the same transaction; engines LISTEN and start a round at once.

The notification is only a hint that saves the wait for the next poll of the table: it is
sent on commit (never for a rolled-back insert), and an engine that misses one (its LISTEN
connection was down, PostgreSQL restarted) still finds the task at its next periodic poll.
On SQLite there is nothing to send: the engine in the creating process is woken directly
and the others poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("vidgate.engine")

CHANNEL = "vidgate_new_work"
# pg_notify() rather than NOTIFY: a plain SELECT, which every driver path can prepare.
# PostgreSQL folds identical notifications of one transaction into one.
NOTIFY = sa.select(sa.func.pg_notify(CHANNEL, ""))
# The same as plain text, to send with other statements in one round trip (pg_writes).
NOTIFY_SQL = str(NOTIFY.compile(dialect=postgresql.dialect(),
                                compile_kwargs={"literal_binds": True}))


def announce(conn: sa.Connection) -> None:
    """Inside the caller's transaction (a write, store/writes.py): tell listening engines
    there is work (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        conn.execute(NOTIFY)


class NewWorkListener:
    """Keeps one LISTEN connection open and calls `on_work` for every notification.

    The connection is its own (not the pool's). When it drops, `on_work` is called once
    (anything may have been missed) and it reconnects every `retry_seconds` until PostgreSQL
    answers again; every `check_seconds` a query checks that a silent connection is alive.
    """

    def __init__(self, engine: AsyncEngine, on_work: Callable[[], None], name: str, *,
                 retry_seconds: float = 1.0, check_seconds: float = 10.0) -> None:
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        # named after the worker, so pg_stat_activity says whose LISTEN a connection is
        self._connect = lambda: asyncpg.connect(
            *args, **kwargs, timeout=10,
            server_settings={"application_name": f"vidgate-listen {name}"})
        self.on_work = on_work
        self.retry_seconds = retry_seconds
        self.check_seconds = check_seconds
        self.connected = asyncio.Event()  # set while listening (tests, readiness)

    async def run(self) -> None:
        """Listen until cancelled."""
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # down, restarting, refused: try again shortly
                log.warning("LISTEN %s: %s; polling only until it is back", CHANNEL, exc)
            self.connected.clear()
            self.on_work()
            await asyncio.sleep(self.retry_seconds)

    async def _listen_once(self) -> None:
        conn = await self._connect()
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        try:
            await conn.add_listener(CHANNEL, lambda *_: self.on_work())
            self.connected.set()
            self.on_work()  # what was announced while we were not listening
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self.check_seconds)
                if not lost.is_set():
                    await conn.fetchval("SELECT 1", timeout=self.check_seconds)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)
        raise ConnectionError("the LISTEN connection was closed")
