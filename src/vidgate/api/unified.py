"""Family C: the Unified video API (`/v1/video/create` + `/v1/video/query`).

A compact create response and a flat query response with `width`/`height`; the rules behind
both are `TaskService`'s, shared with the other two families.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..catalog import RawVideoRequest
from ..domain import Task
from ..errors import invalid
from .auth import Owner
from .bodies import Body, read_body
from .generations import task_error
from .images_in import image_from_body
from .responses import json_response

router = APIRouter()
FAMILY = "unified"
IMAGE_FIELDS = ("images", "image_url", "image", "input_reference")


def parse_create(body: Body) -> RawVideoRequest:
    seconds_param = "duration" if body.first("duration") is not None else "seconds"
    return RawVideoRequest(
        prompt=body.fields.get("prompt"),
        model=body.fields.get("model"),
        size=body.fields.get("size"),
        width=body.fields.get("width"),
        height=body.fields.get("height"),
        seconds=body.first("duration", "seconds"),
        seconds_param=seconds_param,
        aspect_ratio=body.fields.get("aspect_ratio"),
        image=image_from_body(body, *IMAGE_FIELDS),
        metadata=body.fields.get("metadata"),
        n=body.fields.get("n"),
        seed=body.fields.get("seed"),
    )


def render_created(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "task_id": task.id,
        "model": task.model,
        "status": task.status,
        "status_update_time": task.status_updated_at,
        "created_at": task.created_at,
    }


def render_query(task: Task, request: Request) -> dict[str, Any]:
    """The create shape plus progress and results; every key present, nulls explicit."""
    links = request.app.state.services.links(task, request)
    return {
        **render_created(task),
        "progress": task.progress,
        "completed_at": task.completed_at,
        "video_url": links.video,
        "url": links.video,
        "thumbnail_url": links.thumbnail,
        "expires_at": links.expires_at,
        "width": task.width,
        "height": task.height,
        "duration": task.seconds_out,
        "error": task_error(task),
    }


@router.post("/v1/video/create")
async def create(request: Request, key: Owner) -> Response:
    services = request.app.state.services
    body = await read_body(request, services.settings.max_upload_bytes)
    task = await services.tasks.create(
        key.id,
        parse_create(body),
        family=FAMILY,
        idempotency_key=request.headers.get("idempotency-key"),
        model_not_found_status=400,
    )
    return json_response(render_created(task))


@router.get("/v1/video/query")
async def query(
    request: Request, key: Owner, task_id: str | None = None, id: str | None = None
) -> Response:
    wanted = task_id or id
    if not wanted:
        raise invalid("'task_id' is required (or 'id').", param="task_id")
    task = await request.app.state.services.tasks.get(key.id, wanted)
    return json_response(render_query(task, request))
