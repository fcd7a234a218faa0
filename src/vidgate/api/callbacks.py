"""`POST /callbacks/{channel}/{task_id}?sig=`: where providers call back (engine/callbacks.py).

Not under /v1 and without an API key: the signed URL and the provider's own signature are
the credentials. Left out of the OpenAPI schema, which describes the client API; the route
is documented in docs/backends.md ("Callbacks").
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ..errors import ApiError
from .bodies import json_limit
from .deps import Deps
from .responses import json_response

router = APIRouter()


@router.post("/callbacks/{channel}/{task_id}", include_in_schema=False)
async def provider_callback(channel: str, task_id: str, request: Request, services: Deps,
                            sig: str = "") -> Response:
    # a Replicate prediction carries its input, so a reference image may come back in it
    limit = json_limit(services.settings.max_upload_bytes)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "invalid_request", "The callback body is too large.")
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "invalid_request", "The callback body is too large.")
        parts.append(chunk)
    outcome = await services.callbacks.receive(channel, task_id, sig, request.headers,
                                               b"".join(parts))
    return json_response(outcome.body, outcome.status)
