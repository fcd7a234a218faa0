"""Signed asset URLs: `GET /files/{id}/{variant}?exp=&sig=`, no API key needed until `exp`."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..domain import VARIANTS
from ..errors import ApiError, not_found
from ..signing import verify
from .content import asset_answers, asset_response
from .deps import Deps

router = APIRouter()


def _forbidden(message: str) -> ApiError:
    return ApiError(403, "forbidden", message)


async def signed_file(
    task_id: str, variant: str, request: Request, services: Deps, exp: str = "", sig: str = ""
) -> Response:
    if variant not in VARIANTS or not (exp.isascii() and exp.isdigit()) or not sig:
        raise _forbidden("Invalid signed URL.")
    if not verify(services.settings.secret, task_id, variant, int(exp), sig, time.time()):
        raise _forbidden("This URL has expired or its signature does not match.")
    task = await services.db.get_task(task_id)
    if task is None:
        raise not_found()
    blob_key = services.tasks.asset_key(task, variant)
    return await asset_response(request, services.blobs, blob_key, variant)


# GET and HEAD as two routes, so OpenAPI names each operation once (one route with both
# methods gave both the same operation id, and FastAPI warned on every /openapi.json).
for _method in ("GET", "HEAD"):
    router.add_api_route("/files/{task_id}/{variant}", signed_file, methods=[_method],
                         name=f"{_method.lower()}_signed_file", response_class=Response,
                         openapi_extra=asset_answers(403))  # 403: not signed, or expired
