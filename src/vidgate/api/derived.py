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
from .contract import FormBody, answers
from .deps import Deps
from .families import VIDEOS
from .responses import json_response
from .schemas import ref

TEXT = {"type": "string"}
SOURCE_ID = {"type": "object", "properties": {"id": TEXT}, "required": ["id"]}
# The source: JSON {"video": {"id": ...}}, or in a form a file part `video` or `video[id]`
EDIT_BODY = FormBody(json={"prompt": TEXT, "video": SOURCE_ID},
                     form={"prompt": TEXT, "video[id]": TEXT}, files=("video",),
                     json_required=("prompt", "video"), form_required=("prompt",))
EXTEND_BODY = FormBody(
    json={**EDIT_BODY.json, "seconds": {"type": ["string", "integer"],
                                        "description": "the total length"}},
    form={**EDIT_BODY.form, "seconds": TEXT}, files=("video",),
    json_required=("prompt", "video", "seconds"), form_required=("prompt", "seconds"))
CHARACTER_BODY = FormBody(json={"name": TEXT}, form={"name": TEXT}, files=("video",),
                          json_required=("name",), form_required=("name", "video"))
# a new video from a source the key owns (404 if not), billed (402) like a create
DERIVED_ERRORS = (402, 403, 404, 409)

router = APIRouter()


@router.post("/v1/videos/edits", name="edit_video",
             openapi_extra=answers(ref("Video"), body=EDIT_BODY, idempotent=True,
                                   errors=DERIVED_ERRORS))
async def edit_video(request: Request, key: Owner, services: Deps) -> Response:
    body = await read_body(request, services.settings.max_upload_bytes)
    task = await services.derived.edit(
        key.id, source_ref(body.fields, body.files), body.fields.get("prompt"),
        idempotency_key=request.headers.get("idempotency-key"))
    return json_response(VIDEOS.render(task, services.links(task, request)),
                         headers=VIDEOS.headers(task))


@router.post("/v1/videos/extensions", name="extend_video",
             openapi_extra=answers(ref("Video"), body=EXTEND_BODY, idempotent=True,
                                   errors=DERIVED_ERRORS))
async def extend_video(request: Request, key: Owner, services: Deps) -> Response:
    body = await read_body(request, services.settings.max_upload_bytes)
    task = await services.derived.extend(
        key.id, source_ref(body.fields, body.files), body.fields.get("prompt"),
        body.fields.get("seconds"), idempotency_key=request.headers.get("idempotency-key"))
    return json_response(VIDEOS.render(task, services.links(task, request)),
                         headers=VIDEOS.headers(task))


@router.post("/v1/videos/characters", name="create_character",
             openapi_extra=answers(ref("Character"), body=CHARACTER_BODY))
async def create_character(request: Request, key: Owner, services: Deps) -> Response:
    body = await read_body(request, services.settings.max_upload_bytes)
    character = await services.characters.create(key.id, body.fields.get("name"),
                                                 body.files.get("video"))
    return json_response(character_object(character))


@router.get("/v1/videos/characters/{character_id}", name="get_character",
            openapi_extra=answers(ref("Character")))
async def get_character(character_id: str, key: Owner, services: Deps) -> Response:
    return json_response(character_object(await services.characters.get(key.id,
                                                                         character_id)))
