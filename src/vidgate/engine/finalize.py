"""Turning a finished backend job into stored assets and a completed task, exactly once."""

from __future__ import annotations

import asyncio
import logging
import time

from .. import media
from ..backends.base import Backend, Job
from ..domain import COMPLETED, Task
from ..store.blobs import LocalBlobStore
from ..store.db import Database

log = logging.getLogger("vidgate.finalize")


class Finalizer:
    def __init__(self, db: Database, blobs: LocalBlobStore, retention_seconds: int) -> None:
        self.db = db
        self.blobs = blobs
        self.retention = retention_seconds

    async def complete(self, task: Task, backend: Backend, job: Job, worker: str) -> bool:
        """Store the result and mark the task completed; False if another worker won.

        Assets go under a folder unique to this attempt, so a losing finalizer can remove its
        own copy without touching the winner's.
        """
        files = await backend.fetch(job)
        if files.thumbnail is None or files.spritesheet is None or not files.thumbnail.exists():
            thumb = job.work_dir / media.THUMBNAIL_NAME
            sprite = job.work_dir / media.SPRITESHEET_NAME
            await asyncio.to_thread(media.make_previews, files.video, thumb, sprite)
            files = type(files)(files.video, thumb, sprite)
        info = await asyncio.to_thread(media.probe, files.video)

        prefix = f"tasks/{task.id}/{worker}-{task.attempts}"
        keys = {
            "video_key": f"{prefix}/{media.VIDEO_NAME}",
            "thumbnail_key": f"{prefix}/{media.THUMBNAIL_NAME}",
            "spritesheet_key": f"{prefix}/{media.SPRITESHEET_NAME}",
        }
        size = await self.blobs.put_file(keys["video_key"], files.video, move=True)
        await self.blobs.put_file(keys["thumbnail_key"], files.thumbnail, move=True)
        await self.blobs.put_file(keys["spritesheet_key"], files.spritesheet, move=True)

        now = int(time.time())
        won = await self.db.finish_leased(
            task.id, worker, COMPLETED,
            status=COMPLETED, progress=100, completed_at=now, status_updated_at=now,
            delivered_seconds=round(info.duration, 3), delivered_width=info.width,
            delivered_height=info.height, video_bytes=size,
            assets_expire_at=now + self.retention, lease_owner=None, lease_until=None,
            **keys,
        )
        if not won:
            log.warning("task %s was finished elsewhere; dropping this copy", task.id)
            await self.blobs.delete_prefix(prefix)
        return won
