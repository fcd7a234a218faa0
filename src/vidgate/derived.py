"""Edits and extensions: new videos made from a source video, given by id or as a file.

How a client names the source (checked against the SDKs): the Python SDK sends a file part
`video`; the Node SDK sends `{"id": ...}` as the multipart field `video[id]` (api/bodies.py
nests it); other clients send JSON `{"video": {"id": ...}}`. Either way the source is
probed before anything else, and a copy is stored with the new task (a source may be
deleted or expire while the job runs).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from .catalog import RawVideoRequest
from .domain import EDIT, EXTEND, Task, added_seconds
from .engine.router import Router
from .errors import ApiError, invalid
from .media.files import SOURCE_NAME
from .media.probe import MediaInfo, probe
from .tasks import TaskService


@dataclass(frozen=True)
class Source:
    data: bytes
    info: MediaInfo
    task: Task | None  # when given by id: the key's completed video


def source_ref(fields: dict[str, Any], files: dict[str, bytes]) -> str | bytes:
    """The id or the file bytes the body names as `video`; 400 naming `video` otherwise."""
    if "video" in files:
        return files["video"]
    value = fields.get("video")
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, str) and value:
        return value
    raise invalid("'video' is required: a video file, or {\"id\": ...} of a completed video.",
                  param="video")


def probe_bytes(data: bytes) -> MediaInfo:
    """Size, length and a decodable video stream, or a 400 naming `video`."""
    fd, path = tempfile.mkstemp(suffix=".mp4")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        info = probe(path)
    except ValueError as exc:
        raise invalid("'video' is not a readable video file.", param="video",
                      code="invalid_video") from exc
    finally:
        os.unlink(path)
    if info.duration <= 0 or info.width <= 0:
        raise invalid("'video' has no frames.", param="video", code="invalid_video")
    return info


class DerivedVideos:
    def __init__(self, service: TaskService, router: Router) -> None:
        self.service = service
        self.router = router
        self.blobs = service.blobs
        self.catalog = service.catalog

    async def source(self, owner_id: str, ref: str | bytes) -> Source:
        if isinstance(ref, bytes):
            return Source(ref, await asyncio.to_thread(probe_bytes, ref), None)
        task = await self.service.get(owner_id, ref)
        if not task.assets_available(time.time()) or task.video_key is None:
            raise ApiError(400, "video_not_ready",
                           "Only a completed video whose assets are still available can be "
                           "used as a source.", param="video")
        data = await self.blobs.get_bytes(task.video_key)
        return Source(data, await asyncio.to_thread(probe_bytes, data), task)

    async def edit(self, owner_id: str, ref: str | bytes, prompt: object, *,
                   idempotency_key: str | None = None) -> Task:
        """Same size and length as the source; only channels that edit may take it."""
        source = await self.source(owner_id, ref)
        request = self._request(source, prompt)
        request = dataclasses.replace(request, seconds=max(1, round(source.info.duration)))
        return await self._insert(owner_id, EDIT, source, request, idempotency_key,
                                  check=EDIT)

    async def extend(self, owner_id: str, ref: str | bytes, prompt: object, seconds: object,
                     *, idempotency_key: str | None = None) -> Task:
        """`seconds` is the total length: longer than the source, at most the model's
        longest length. Only the new seconds are charged."""
        source = await self.source(owner_id, ref)
        request = self._request(source, prompt)
        total = _whole_seconds(seconds)
        have = source.info.duration
        longest = max(self.catalog.get(request.model).seconds)
        if total is None or not have < total <= longest or added_seconds(total, have) < 1:
            raise invalid(
                f"'seconds' is the total length of the extended video: a whole number above "
                f"the source's {have:.1f} s and at most {longest} for {request.model}.",
                param="seconds", code="invalid_duration")
        request = dataclasses.replace(request, seconds=total)
        continued = dataclasses.replace(request, seconds=added_seconds(total, have))
        if source.task and not self.router.can_route(request, False, EXTEND) \
                and self.router.can_continue(source.task.backend, continued):
            operation = None  # the source's channel continues it (engine/step.py)
        else:
            operation = EXTEND
        return await self._insert(owner_id, EXTEND, source, request, idempotency_key,
                                  check=operation)

    def _request(self, source: Source, prompt: object):
        model = source.task.model if source.task else None
        # a task keeps the size it was accepted at (an upstream may deliver another)
        size = source.task.size if source.task else f"{source.info.width}x{source.info.height}"
        try:
            return self.catalog.normalize(RawVideoRequest(prompt=prompt, model=model,
                                                          size=size))
        except ApiError as exc:
            if exc.param != "size":
                raise
            raise invalid(f"The source video's size is not one {model or 'the model'} "
                          f"renders: {exc.message}", param="video") from exc

    async def _insert(self, owner_id: str, operation: str, source: Source, request,
                      idempotency_key: str | None, check: str | None) -> Task:
        """`check`: the operation some channel must perform natively (None: none needs to)."""
        service = self.service
        if idempotency_key:
            earlier = await service.tasks.find_by_idempotency_key(owner_id, idempotency_key)
            if earlier is not None:
                return earlier
        if check is not None:
            service.check_operation(request, check)
        origin = source.task
        params = {"source": {
            "operation": operation,
            "seconds": round(source.info.duration, 3),
            "channel": origin.backend if origin else None,
            "upstream_id": origin.upstream_id if origin else None,
        }}
        return await service.insert(
            owner_id, request, "videos", idempotency_key, blobs={SOURCE_NAME: source.data},
            params=params)


def _whole_seconds(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().removesuffix("s").isdigit():
        return int(value.strip().removesuffix("s"))
    return None
