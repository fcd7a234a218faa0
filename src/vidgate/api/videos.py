"""Family A's routes beyond create and status read (those are in `api/families.py`):
list, delete, remix and download, as the official `openai` SDK speaks them."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ..domain import Task
from ..services import Services
from .auth import Owner
from .bodies import read_body
from .content import asset_answers, asset_response
from .contract import FormBody, answers
from .deps import Deps
from .families import VIDEOS
from .responses import json_response
from .schemas import ref

REMIX_BODY = FormBody(json={"prompt": {"type": "string"}}, form={"prompt": {"type": "string"}},
                      json_required=("prompt",), form_required=("prompt",))

router = APIRouter()


def _video_response(task: Task, request: Request, services: Services) -> Response:
    return json_response(VIDEOS.render(task, services.links(task, request)),
                         headers=VIDEOS.headers(task))


@router.get("/v1/videos", openapi_extra=answers(ref("VideoList")))
async def list_videos(
    request: Request,
    key: Owner,
    services: Deps,
    after: str | None = None,
    limit: int = Query(20),
    order: str = "desc",
) -> Response:
    found, has_more = await services.tasks.list(key.id, after=after, limit=limit, order=order)
    data = [VIDEOS.render(t, services.links(t, request)) for t in found]
    return json_response({
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    })


@router.delete("/v1/videos/{video_id}", openapi_extra=answers(ref("VideoDeleted")))
async def delete_video(video_id: str, key: Owner, services: Deps) -> Response:
    await services.tasks.delete(key.id, video_id)
    return json_response({"id": video_id, "object": "video.deleted", "deleted": True})


@router.post("/v1/videos/{video_id}/remix",
             openapi_extra=answers(ref("Video"), body=REMIX_BODY, idempotent=True,
                                   errors=(402, 403, 409)))
async def remix_video(video_id: str, request: Request, key: Owner, services: Deps) -> Response:
    body = await read_body(request, services.settings.max_upload_bytes)
    task = await services.tasks.remix(
        key.id, video_id, body.fields.get("prompt"),
        idempotency_key=request.headers.get("idempotency-key"),
    )
    return _video_response(task, request, services)


@router.get("/v1/videos/{video_id}/content", response_class=Response,
            openapi_extra=asset_answers())
async def download_content(
    video_id: str, request: Request, key: Owner, services: Deps, variant: str = "video"
) -> Response:
    blob_key = await services.tasks.content(key.id, video_id, variant)
    return await asset_response(request, services.blobs, blob_key, variant)
