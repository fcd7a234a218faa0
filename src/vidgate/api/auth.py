"""API-key authentication: `Authorization: Bearer <key>` on every /v1 route."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..errors import ApiError
from ..store.db import ApiKey


async def require_key(request: Request) -> ApiKey:
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "unauthorized", "Missing API key: send 'Authorization: Bearer <key>'.")
    key = await request.app.state.services.db.key_for_secret(secret.strip())
    if key is None:
        raise ApiError(401, "unauthorized", "Incorrect API key provided.")
    if key.revoked_at is not None:
        raise ApiError(401, "unauthorized", "This API key has been revoked.")
    await request.app.state.services.limiter.check(key.id, key.rpm_limit)
    return key


# The authenticated key, as a route parameter type.
Owner = Annotated[ApiKey, Depends(require_key)]
