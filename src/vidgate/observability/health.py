"""Readiness: can this process do its work right now? (`GET /readyz`; `/healthz` only says
it is alive.)

A load balancer may ask every second, so a check costs at most one database round trip: the
stored schema revision, read through a fresh connection on SQLite (the pooled one would keep
answering from an open file that was moved or removed) and through the pool on PostgreSQL
(pre-ping replaces a dead connection). The code's head revision is read from the migration
scripts once. The blob store is proven writable by writing a small marker, at most every few
seconds; the engine by its loop having run a round recently.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from ..store.blobs import BlobStore
from ..store.database import MIGRATIONS_DIR, Database
from ..store.sqlite_reads import sqlite_file

DB_TIMEOUT = 2.0          # a database that does not answer in this long is not ready
BLOB_CHECK_EVERY = 5.0    # seconds a successful blob write is trusted
MARKER = ".vidgate-ready"


def head_revision() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg).get_current_head() or ""


@dataclass
class Readiness:
    db: Database
    blobs: BlobStore
    loop_age: Callable[[], float] | None = None  # seconds since the engine's last round
    max_loop_age: float = 30.0
    _head: str | None = None
    _blob_ok_until: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def failures(self) -> dict[str, str]:
        """Each part that is not ready, with why; empty when ready."""
        failed: dict[str, str] = {}
        try:
            revision = await asyncio.wait_for(self._stored_revision(), DB_TIMEOUT)
        except Exception as exc:
            failed["database"] = f"unreachable: {type(exc).__name__}: {exc}"[:300]
        else:
            if self._head is None:
                self._head = await asyncio.to_thread(head_revision)
            if revision != self._head:
                failed["schema"] = f"at revision {revision!r}, the code needs {self._head!r}"
        blob_error = await self._blob_error()
        if blob_error:
            failed["blobs"] = blob_error
        if self.loop_age is not None:
            age = self.loop_age()
            if age > self.max_loop_age:
                failed["engine"] = f"the engine loop last ran {age:.0f} s ago"
        return failed

    async def _stored_revision(self) -> str | None:
        path = sqlite_file(self.db.url) if self.db.is_sqlite else None
        if path is not None:
            return await asyncio.to_thread(_sqlite_revision, path)
        async with self.db.engine.connect() as conn:
            return (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                    ).scalar()

    async def _blob_error(self) -> str | None:
        if time.monotonic() < self._blob_ok_until:
            return None
        async with self._lock:  # one write however many probes arrive at once
            if time.monotonic() < self._blob_ok_until:
                return None
            try:
                await self.blobs.put_bytes(MARKER, b"ok")
            except Exception as exc:
                return f"not writable: {type(exc).__name__}: {exc}"[:300]
            self._blob_ok_until = time.monotonic() + BLOB_CHECK_EVERY
            return None


def _sqlite_revision(path: str) -> str | None:
    # mode=rw: a missing file is an error, never a new empty database
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=DB_TIMEOUT)
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    finally:
        conn.close()
    return row[0] if row else None
