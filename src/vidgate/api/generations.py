"""Family B: Video Generations (`/v1/video/generations`), the seed's recommended first path.

Only shapes live here: which body fields mean what, and how a task is rendered. Every rule
(models, sizes, durations, images, idempotency) is applied by `TaskService.create`.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from ..catalog import RawVideoRequest
from ..domain import Task
from ..errors import invalid
from .auth import Owner
from .bodies import Body, read_body
from .images_in import image_from_body
from .responses import json_response

router = APIRouter()
FAMILY = "generations"
IMAGE_FIELDS = ("image", "image_url", "images", "input_reference")


def parse_create(body: Body) -> RawVideoRequest:
    """Body fields -> raw request. `model` is required on this family, unlike the others."""
    if body.first("model") is None:
        raise invalid("'model' is required.", param="model")
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
        metadata=_metadata(body.fields.get("metadata")),
        n=body.fields.get("n"),
        seed=body.fields.get("seed"),
    )


def _metadata(value: Any) -> Any:
    """A multipart form can only carry metadata as a JSON string; decode it when it is one."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value  # the catalog rejects a non-object with param "metadata"
    return value


def render(task: Task, request: Request) -> dict[str, Any]:
    """The task object of spec section 5; every key present, nulls explicit."""
    links = request.app.state.services.links(task, request)
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


def task_error(task: Task) -> dict[str, str] | None:
    if not task.error_code:
        return None
    return {"code": task.error_code, "message": task.error_message or ""}


@router.post("/v1/video/generations")
async def create_generation(request: Request, key: Owner) -> Response:
    services = request.app.state.services
    body = await read_body(request, services.settings.max_upload_bytes)
    task = await services.tasks.create(
        key.id,
        parse_create(body),
        family=FAMILY,
        idempotency_key=request.headers.get("idempotency-key"),
        model_not_found_status=400,
    )
    return json_response(render(task, request))


@router.get("/v1/video/generations/{task_id}")
async def get_generation(task_id: str, request: Request, key: Owner) -> Response:
    task = await request.app.state.services.tasks.get(key.id, task_id)
    return json_response(render(task, request))
