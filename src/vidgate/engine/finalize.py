"""Turning a finished backend job into stored assets and a completed task, exactly once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from ..backends.base import Backend, Job, ResultFiles, ResultUnavailable
from ..domain import COMPLETED, EXTEND, Task
from ..lifecycle import COMPLETED_PROGRESS
from ..media.files import SPRITESHEET_NAME, THUMBNAIL_NAME, VIDEO_NAME
from ..media.join import join
from ..media.previews import make_previews
from ..media.probe import probe
from ..observability import metrics
from ..store.blobs import BlobStore
from ..store.database import Database

log = logging.getLogger("vidgate.finalize")


# (task, delivered seconds) -> price in micro-USD; the catalog's rule, handed in by the app
Pricing = Callable[[Task, float], int]


def free(_task: Task, _seconds: float) -> int:
    return 0


class Finalizer:
    def __init__(self, db: Database, blobs: BlobStore, retention_seconds: int,
                 pricing: Pricing = free) -> None:
        self.leases = db.leases
        self.blobs = blobs
        self.retention = retention_seconds
        self.pricing = pricing

    async def complete(self, task: Task, backend: Backend, job: Job, worker: str) -> bool:
        """Store the result and mark the task completed; False if another worker won.

        Assets go under a folder unique to this attempt, so a losing finalizer can remove its
        own copy without touching the winner's.
        """
        files = await backend.fetch(job)
        source = getattr(job, "source", None)  # stand-in jobs (tests) may lack it
        if source is not None and source.operation == EXTEND \
                and EXTEND not in getattr(backend, "operations", ()):
            # a continuation rendered by image-to-video: the result is source + it
            joined = job.work_dir / "joined.mp4"
            await asyncio.to_thread(_join_checked, source.path, files.video, joined)
            files = ResultFiles(video=joined)
        try:
            info = await asyncio.to_thread(probe, files.video)
        except ValueError as exc:  # an error page or a truncated file, not a video
            raise ResultUnavailable(f"the result is not a readable video ({exc})") from exc
        files = await asyncio.to_thread(_with_previews, files, job.work_dir)

        prefix = f"tasks/{task.id}/{worker}-{task.attempts}"
        keys = {
            "video_key": f"{prefix}/{VIDEO_NAME}",
            "thumbnail_key": f"{prefix}/{THUMBNAIL_NAME}",
            "spritesheet_key": f"{prefix}/{SPRITESHEET_NAME}",
        }
        size = await self.blobs.put_file(keys["video_key"], files.video, move=True)
        previews = (await self.blobs.put_file(keys["thumbnail_key"], files.thumbnail, move=True)
                    + await self.blobs.put_file(keys["spritesheet_key"], files.spritesheet,
                                                move=True))
        metrics.mirrored_bytes.labels(task.backend or "none").inc(size + previews)

        now = int(time.time())
        won = await self.leases.finish_leased(
            task.id, worker, COMPLETED, charge_micro=self.pricing(task, info.duration),
            progress=COMPLETED_PROGRESS, completed_at=now, status_updated_at=now,
            delivered_seconds=round(info.duration, 3), delivered_width=info.width,
            delivered_height=info.height, video_bytes=size,
            assets_expire_at=now + self.retention, lease_owner=None, lease_until=None,
            **keys,
        )
        if not won:
            log.warning("task %s was finished elsewhere; dropping this copy", task.id)
            await self.blobs.delete_prefix(prefix)
        return won


def _join_checked(first: Path, second: Path, out: Path) -> None:
    try:
        join(first, second, out)
    except ValueError as exc:  # the upstream's part is not a readable video
        raise ResultUnavailable(f"the continuation is not a readable video ({exc})") from exc


def _with_previews(files: ResultFiles, work_dir: Path) -> ResultFiles:
    """Keep the upstream's previews when they are real images (converted to the formats we
    serve: WebP thumbnail, JPEG spritesheet); make whatever is missing from the video."""
    thumb = _as_format(files.thumbnail, "WEBP", work_dir / THUMBNAIL_NAME)
    sprite = _as_format(files.spritesheet, "JPEG", work_dir / SPRITESHEET_NAME)
    if thumb is None or sprite is None:
        made = work_dir / "previews"
        made.mkdir(parents=True, exist_ok=True)
        make_previews(files.video, made / THUMBNAIL_NAME, made / SPRITESHEET_NAME)
        thumb = thumb or made / THUMBNAIL_NAME
        sprite = sprite or made / SPRITESHEET_NAME
    return ResultFiles(files.video, thumb, sprite)


def _as_format(path: Path | None, fmt: str, dest: Path) -> Path | None:
    if path is None or not path.is_file():
        return None
    # Already the format we serve? Checking that one format alone: trying every other
    # format was most of an open's cost.
    try:
        with Image.open(path, formats=(fmt,)):
            return path
    except Exception:
        pass
    try:
        with Image.open(path) as img:
            img.load()
            dest.parent.mkdir(parents=True, exist_ok=True)
            img.convert("RGB").save(dest, format=fmt, quality=80)
            return dest
    except Exception:  # not an image (or a hostile one): we make our own instead
        return None
