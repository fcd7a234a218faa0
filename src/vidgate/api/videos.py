"""Family A: the OpenAI Videos API (`/v1/videos`), as the official `openai` SDK speaks it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ..catalog import RawVideoRequest
from ..domain import Task
from ..signing import AssetLinks
from .auth import Owner
from .bodies import Body, read_body
from .content import asset_response
from .fields import CreateRoute, create_task, raw_request, task_error
from .responses import json_response

router = APIRouter()
FAMILY = "videos"
DEFAULT_SIZE = "720x1280"  # OpenAI's default for this family
POLL_AFTER_MS = "1000"


def parse_create(body: Body) -> RawVideoRequest:
    return raw_request(body, seconds_fields=("seconds", "duration"),
                       image_fields=("input_reference", "image_url"))


def render(task: Task, links: AssetLinks) -> dict[str, Any]:
    return {
        "id": task.id,
        "object": "video",
        "model": task.model,
        "status": task.status,
        "progress": task.progress,
        "created_at": task.created_at,
        "completed_at": task.completed_at,
        "expires_at": links.expires_at,
        "prompt": task.prompt,
        "size": task.size,
        "seconds": str(task.seconds_out),
        "quality": "standard",
        "remixed_from_video_id": task.remixed_from,
        "error": task_error(task),
        "url": links.video,
        "video_url": links.video,
        "thumbnail_url": links.thumbnail,
    }


def poll_headers(task: Task) -> dict[str, str]:
    """OpenAI's hint of when to look again, on a task that is still running."""
    return {} if task.finished else {"openai-poll-after-ms": POLL_AFTER_MS}


def _video_response(task: Task, request: Request) -> Response:
    links = request.app.state.services.links(task, request)
    return json_response(render(task, links), headers=poll_headers(task))


CREATE = CreateRoute(FAMILY, parse_create,
                     {"default_size": DEFAULT_SIZE, "model_not_found_status": 404})


@router.post("/v1/videos")
async def create_video(request: Request, key: Owner) -> Response:
    task = await create_task(request, key, CREATE)
    return _video_response(task, request)


@router.get("/v1/videos")
async def list_videos(
    request: Request,
    key: Owner,
    after: str | None = None,
    limit: int = Query(20),
    order: str = "desc",
) -> Response:
    found, has_more = await request.app.state.services.tasks.list(
        key.id, after=after, limit=limit, order=order
    )
    links = request.app.state.services.links
    data = [render(t, links(t, request)) for t in found]
    return json_response({
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    })


@router.get("/v1/videos/{video_id}")
async def retrieve_video(
    video_id: str, request: Request, key: Owner
) -> Response:
    task = await request.app.state.services.tasks.get(key.id, video_id)
    return _video_response(task, request)


@router.delete("/v1/videos/{video_id}")
async def delete_video(
    video_id: str, request: Request, key: Owner
) -> Response:
    await request.app.state.services.tasks.delete(key.id, video_id)
    return json_response({"id": video_id, "object": "video.deleted", "deleted": True})


@router.post("/v1/videos/{video_id}/remix")
async def remix_video(
    video_id: str, request: Request, key: Owner
) -> Response:
    services = request.app.state.services
    body = await read_body(request, services.settings.max_upload_bytes)
    task = await services.tasks.remix(
        key.id, video_id, body.fields.get("prompt"),
        idempotency_key=request.headers.get("idempotency-key"),
    )
    return _video_response(task, request)


@router.get("/v1/videos/{video_id}/content")
async def download_content(
    video_id: str, request: Request, key: Owner, variant: str = "video"
) -> Response:
    services = request.app.state.services
    blob_key = await services.tasks.content(key.id, video_id, variant)
    return await asset_response(request, services.blobs, blob_key, variant)
