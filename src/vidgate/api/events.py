"""Live progress as Server-Sent Events, on each family's `events_path` (api/families.py).

`GET /v1/videos/{id}/events` (and the other families' streams) answers `text/event-stream`:
a `progress` event for each step the task takes, then one `completed` or `failed`, each with
the task as that family's status read renders it; the stream ends with the task. Every
event's id is the point the task had reached (`<state rank>.<progress>`), so a client that
reconnects with `Last-Event-ID` is sent only what comes after it. Reads go through the
process's `TaskWatch` (vidgate/watch.py): one poller per watched task, however many watch it.
Authentication and ownership are the status read's: a key that does not own the id gets 404
before the stream starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from ..domain import COMPLETED, FAILED, ApiKey, Task
from ..errors import ApiError
from ..services import Services
from ..watch import START, Point, point
from .contract import answers
from .families import FAMILIES, Family, with_task_id

router = APIRouter()
KEEPALIVE_SECONDS = 15.0  # a comment line this often keeps proxies from closing a quiet stream
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def event_id(task: Task) -> str:
    rank, progress = point(task)
    return f"{rank}.{progress}"


def parse_event_id(value: str | None) -> Point:
    """The point a `Last-Event-ID` names; anything unreadable means from the start."""
    rank, dot, progress = (value or "").strip().partition(".")
    if not (dot and rank.isdigit() and progress.isdigit()):
        return START
    return int(rank), int(progress)


def event_name(task: Task) -> str:
    return {COMPLETED: "completed", FAILED: "failed"}.get(task.status, "progress")


def encode(task: Task, data: dict) -> bytes:
    """One SSE frame (orjson never writes a raw newline, so `data` is a single line)."""
    return (f"id: {event_id(task)}\nevent: {event_name(task)}\ndata: ".encode()
            + orjson.dumps(data) + b"\n\n")


def _events_endpoint(family: Family) -> Callable[..., Any]:
    async def task_events(request: Request, key: ApiKey, services: Services, task_id: str
                          ) -> Response:
        after = parse_event_id(request.headers.get("last-event-id"))
        # raises the 404 while a status can still be sent
        follower = await services.watch.open(key.id, task_id, after)
        base_url = str(request.base_url)

        async def frames() -> AsyncIterator[bytes]:
            try:
                async for task in follower:
                    yield encode(task, family.render(task, services.links_at(task, base_url)))
            except ApiError:
                return  # deleted while watched: the stream just ends
            finally:
                follower.close()

        # `background` also closes a follower whose stream never started (early disconnect)
        return StreamingResponse(_with_keepalive(frames()), media_type="text/event-stream",
                                 headers=HEADERS, background=BackgroundTask(follower.close))
    return with_task_id(family, task_events)


async def _with_keepalive(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The frames, with a comment line whenever none came for KEEPALIVE_SECONDS."""
    pending: asyncio.Task | None = None
    try:
        while True:
            pending = pending or asyncio.ensure_future(anext(frames, None))
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_SECONDS)
            if not done:
                yield b": keep-alive\n\n"
                continue
            frame, pending = pending.result(), None
            if frame is None:
                return
            yield frame
    finally:
        if pending is not None:  # the client left while a frame was awaited
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)  # before closing `frames`
        await frames.aclose()


for _family in FAMILIES:
    router.add_api_route(_family.events_path, _events_endpoint(_family), methods=["GET"],
                         name=_family.operations[2],
                         response_class=StreamingResponse,
                         openapi_extra=answers({"text/event-stream": {"type": "string"}},
                                               errors=(404,)))
