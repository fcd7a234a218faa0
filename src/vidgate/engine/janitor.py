"""Removing stored assets once their retention has passed.

Expired tasks stay readable (their URL fields turn null and content answers 410); only the
bytes go. The row's asset keys are cleared after the files are removed, so a crash between
the two just repeats the removal.
"""

from __future__ import annotations

import logging
import time

from ..store.blobs import BlobStore
from ..store.database import Database
from .loop import Loop

log = logging.getLogger("vidgate.janitor")


class Janitor:
    def __init__(self, db: Database, blobs: BlobStore, interval_seconds: float = 300.0,
                 batch: int = 200) -> None:
        self.tasks = db.tasks
        self.blobs = blobs
        self.batch = batch
        self._loop = Loop(self.sweep, interval_seconds, log, "asset sweep failed")

    def stop(self) -> None:
        self._loop.stop()

    async def run(self) -> None:
        await self._loop.run()

    async def sweep(self, now: float | None = None) -> int:
        """Remove the assets of every task whose retention ended; returns how many."""
        removed = 0
        while True:
            expired = await self.tasks.expired_assets(now or time.time(), self.batch)
            for task_id in expired:
                await self.blobs.delete_prefix(f"tasks/{task_id}")
                await self.tasks.clear_assets(task_id)
            removed += len(expired)
            if len(expired) < self.batch:
                return removed
