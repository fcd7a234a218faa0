"""Family A's routes that start from a source video or clip, as the `openai` SDK 3.57.0
speaks them (resources/videos.py): edits, extensions, and characters.

The source may come as a file part `video` (the Python SDK), a multipart field `video[id]`
(the Node SDK, nested by api/bodies.py) or JSON `{"video": {"id": ...}}`; derived.py reads
all three the same way.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..characters import character_object
from ..derived import source_ref
from .auth import Owner
from .bodies import read_body
from .deps import Deps
from .families import VIDEOS
from .responses import json_response

router = APIRouter()


@router.post("/v1/videos/edits", name="edit_video")
async def edit_video(request: Request, key: Owner, services: Deps) -> Response:
    body = await read_body(request, services.settings.max_upload_bytes)
    task = await services.derived.edit(
        key.id, source_ref(body.fields, body.files), body.fields.get("prompt"),
        idempotency_key=request.headers.get("idempotency-key"))
    return json_response(VIDEOS.render(task, services.links(task, request)),
                         headers=VIDEOS.headers(task))


@router.post("/v1/videos/extensions", name="extend_video")
async def extend_video(request: Request, key: Owner, services: Deps) -> Response:
    body = await read_body(request, services.settings.max_upload_bytes)
    task = await services.derived.extend(
        key.id, source_ref(body.fields, body.files), body.fields.get("prompt"),
        body.fields.get("seconds"), idempotency_key=request.headers.get("idempotency-key"))
    return json_response(VIDEOS.render(task, services.links(task, request)),
                         headers=VIDEOS.headers(task))


@router.post("/v1/videos/characters", name="create_character")
async def create_character(request: Request, key: Owner, services: Deps) -> Response:
    body = await read_body(request, services.settings.max_upload_bytes)
    character = await services.characters.create(key.id, body.fields.get("name"),
                                                 body.files.get("video"))
    return json_response(character_object(character))


@router.get("/v1/videos/characters/{character_id}", name="get_character")
async def get_character(character_id: str, key: Owner, services: Deps) -> Response:
    return json_response(character_object(await services.characters.get(key.id,
                                                                         character_id)))
