"""Removing stored assets once their retention has passed.

Expired tasks stay readable (their URL fields turn null and content answers 410); only the
bytes go. The row's asset keys are cleared after the files are removed, so a crash between
the two just repeats the removal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ..store.blobs import BlobStore
from ..store.db import Database

log = logging.getLogger("vidgate.janitor")


class Janitor:
    def __init__(self, db: Database, blobs: BlobStore, interval_seconds: float = 300.0,
                 batch: int = 200) -> None:
        self.db = db
        self.blobs = blobs
        self.interval = interval_seconds
        self.batch = batch
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sweep()
            except Exception:
                log.exception("asset sweep failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)

    async def sweep(self, now: float | None = None) -> int:
        """Remove the assets of every task whose retention ended; returns how many."""
        removed = 0
        while True:
            expired = await self.db.expired_assets(now or time.time(), self.batch)
            for task_id in expired:
                await self.blobs.delete_prefix(f"tasks/{task_id}")
                await self.db.clear_assets(task_id)
            removed += len(expired)
            if len(expired) < self.batch:
                return removed
