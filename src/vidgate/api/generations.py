"""Family B: Video Generations (`/v1/video/generations`), the seed's recommended first path.

Only shapes live here: which body fields mean what, and how a task is rendered. Every rule
(models, sizes, durations, images, idempotency) is applied by `TaskService.create`.
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
FAMILY = "generations"
IMAGE_FIELDS = ("image", "image_url", "images", "input_reference")


def parse_create(body: Body) -> RawVideoRequest:
    """`model` is required on this family, unlike the others."""
    if body.first("model") is None:
        raise invalid("'model' is required.", param="model")
    return raw_request(body, seconds_fields=("duration", "seconds"), image_fields=IMAGE_FIELDS)


def render(task: Task, links: AssetLinks) -> dict[str, Any]:
    """The task object of spec section 5; every key present, nulls explicit."""
    return {
        "id": task.id,
        "task_id": task.id,
        "object": "video.generation",
        "model": task.model,
        "status": task.status,
        "progress": task.progress,
        "created_at": task.created_at,
        "completed_at": task.completed_at,
        "expires_at": links.expires_at,
        "size": task.size,
        "error": task_error(task),
        "duration": task.seconds_out,
        "status_update_time": task.status_updated_at,
        "url": links.video,
        "video_url": links.video,
        "thumbnail_url": links.thumbnail,
    }


CREATE = CreateRoute(FAMILY, parse_create, {"model_not_found_status": 400})


@router.post("/v1/video/generations")
async def create_generation(request: Request, key: Owner) -> Response:
    task = await create_task(request, key, CREATE)
    return json_response(render(task, request.app.state.services.links(task, request)))


@router.get("/v1/video/generations/{task_id}")
async def get_generation(task_id: str, request: Request, key: Owner) -> Response:
    task = await request.app.state.services.tasks.get(key.id, task_id)
    return json_response(render(task, request.app.state.services.links(task, request)))
