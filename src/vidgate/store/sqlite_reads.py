"""Small reads on SQLite (a task, a key, a key's characters) through the standard library,
on the calling thread.

A status read is one primary-key lookup. Through SQLAlchemy's async adapter and aiosqlite it
costs a hop to aiosqlite's worker thread and back plus the adapter's layers: about half of a
status read's CPU (bench/RESULTS.md). The same lookup on a plain `sqlite3` connection takes
tens of microseconds, less than the hop, so it runs right on the event loop. In WAL mode
(which `Database` sets) a reader never waits for a writer; the busy timeout covers the rare
moments SQLite itself needs (recovering the WAL index after a crash).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from .compiled import Compiled, compile_sqlite


def sqlite_file(url: str) -> str | None:
    """The database file of an SQLite URL, or None when it is not one file on disk."""
    parsed = make_url(url)
    if not parsed.get_backend_name() == "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or parsed.query:
        return None
    return database


class SqliteRows:
    """Read-only `sqlite3` connections to one file, one per thread, opened on first use."""

    def __init__(self, path: str, busy_timeout_seconds: float = 5.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout_seconds
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._compiled: dict[sa.Executable, Compiled] = {}

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout,
                                   isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only=1")
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return conn

    async def one(self, stmt: sa.Select, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """The first row of `stmt` (compiled once) as {column: value}, converted as
        SQLAlchemy converts it (compiled.py). Runs right here, on the event loop."""
        compiled = self._compiled.get(stmt) or self._compile(stmt)
        row = self._connection().execute(compiled.sql, compiled.params(values)).fetchone()
        return None if row is None else compiled.row(row)

    async def all(self, stmt: sa.Select, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row of `stmt`, as `one` reads the first."""
        compiled = self._compiled.get(stmt) or self._compile(stmt)
        rows = self._connection().execute(compiled.sql, compiled.params(values)).fetchall()
        return [compiled.row(row) for row in rows]

    def _compile(self, stmt: sa.Select) -> Compiled:
        compiled = self._compiled[stmt] = compile_sqlite(stmt)
        return compiled

    def close(self) -> None:
        with self._lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()
        self._local = threading.local()
