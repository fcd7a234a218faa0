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
from ..signing import AssetLinks
from .auth import Owner
from .bodies import Body
from .fields import CreateRoute, create_task, raw_request, task_error
from .responses import json_response

router = APIRouter()
FAMILY = "unified"
IMAGE_FIELDS = ("images", "image_url", "image", "input_reference")


def parse_create(body: Body) -> RawVideoRequest:
    return raw_request(body, seconds_fields=("duration", "seconds"), image_fields=IMAGE_FIELDS)


def render_created(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "task_id": task.id,
        "model": task.model,
        "status": task.status,
        "status_update_time": task.status_updated_at,
        "created_at": task.created_at,
    }


def render_query(task: Task, links: AssetLinks) -> dict[str, Any]:
    """The create shape plus progress and results; every key present, nulls explicit."""
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


CREATE = CreateRoute(FAMILY, parse_create, {"model_not_found_status": 400})


@router.post("/v1/video/create")
async def create(request: Request, key: Owner) -> Response:
    task = await create_task(request, key, CREATE)
    return json_response(render_created(task))


@router.get("/v1/video/query")
async def query(
    request: Request, key: Owner, task_id: str | None = None, id: str | None = None
) -> Response:
    wanted = task_id or id
    if not wanted:
        raise invalid("'task_id' is required (or 'id').", param="task_id")
    task = await request.app.state.services.tasks.get(key.id, wanted)
    return json_response(render_query(task, request.app.state.services.links(task, request)))
