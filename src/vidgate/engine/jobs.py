"""A task's job as a backend sees it: its request, and the files it needs on local disk (the
reference image, an extension's or edit's source video, a character's clip), fetched from
the blob store into the task's work folder once and reused by later steps."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
from pathlib import Path

from ..backends.base import Character, Job, SourceVideo
from ..catalog import VideoRequest
from ..domain import Task, added_seconds
from ..media.files import SOURCE_NAME
from ..media.frames import last_frame_png
from ..store.blobs import BlobStore


class Jobs:
    def __init__(self, blobs: BlobStore, work_dir: Path) -> None:
        self.blobs = blobs
        self.work_dir = work_dir

    async def of(self, task: Task, *, to_submit: bool) -> Job:
        """The job of `task`; `to_submit` when it will be (re)submitted, so it needs its
        reference image and character, not only what the result is joined with."""
        reference = character = None
        work_dir = self.work_dir / task.id
        if to_submit:
            if task.reference_key:
                reference = await self.blobs.get_bytes(task.reference_key)
            character = await self._character(task, work_dir)
        source = await self._source(task, work_dir)  # an extension's is joined at the end
        request = VideoRequest(
            model=task.model, prompt=task.prompt, width=task.width, height=task.height,
            seconds=task.seconds, metadata=task.params.get("metadata") or {}, seed=task.seed,
        )
        return Job(task.id, request, work_dir, reference, task.upstream_id, source=source,
                   character=character)

    async def continuation(self, job: Job) -> Job:
        """An extension as image-to-video of the added seconds from the source's last frame
        (for its source's channel); finalize.py joins the two."""
        assert job.source is not None
        frame = await asyncio.to_thread(last_frame_png, job.source.path)
        seconds = added_seconds(job.request.seconds, job.source.seconds)
        return dataclasses.replace(job, reference=frame,
                                   request=dataclasses.replace(job.request, seconds=seconds))

    def drop(self, task: Task) -> None:
        """Remove the task's work folder (its step is over, or the task ended)."""
        folder = self.work_dir / task.id
        try:
            # mostly absent (a poll) or empty (a completion moved its files to the store):
            # one system call, where rmtree's careful walk costs a dozen
            os.rmdir(folder)
        except FileNotFoundError:
            pass
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)

    async def _source(self, task: Task, work_dir: Path) -> SourceVideo | None:
        given = task.params.get("source")
        if not given:
            return None
        path = await self._local_copy(f"tasks/{task.id}/{SOURCE_NAME}", work_dir / SOURCE_NAME)
        return SourceVideo(given["operation"], path, float(given["seconds"]),
                           given.get("channel"), given.get("upstream_id"))

    async def _character(self, task: Task, work_dir: Path) -> Character | None:
        named = task.params.get("characters") or []
        if not named:
            return None
        path = await self._local_copy(named[0]["clip_key"], work_dir / "character.mp4")
        return Character(named[0]["name"], path, dict(named[0].get("upstreams") or {}))

    async def _local_copy(self, key: str, path: Path) -> Path:
        if not path.is_file():
            data = await self.blobs.get_bytes(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(path.write_bytes, data)
        return path
