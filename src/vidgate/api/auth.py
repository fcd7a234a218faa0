"""API-key authentication: `Authorization: Bearer <key>` on every /v1 route.

`authenticate` is the one rule, used by FastAPI's routes (`Owner`) and by the fast path
(`api/hot_routes.py`), which asks it with `cached_only` so that a key it would have to look
up goes to FastAPI instead.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer

from ..domain import ApiKey
from ..errors import ApiError
from ..services import Services
from ..store.keys import hash_key
from .deps import services_of


def bearer_digest(header: str) -> str | None:
    """The stored hash of the key in an `Authorization: Bearer <key>` header, or None."""
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        return None
    return hash_key(secret)


async def authenticate(services: Services, authorization: str, *,
                       cached_only: bool = False) -> ApiKey | None:
    """The key an `Authorization` header names, counted against its rate limit.

    Raises the 401 (missing, unknown or revoked key) or the 429; with `cached_only`, returns
    None instead of looking a key up or refusing one (the caller lets the full path decide).
    """
    digest = bearer_digest(authorization)
    if cached_only:
        key = services.key_cache.get(digest) if digest else None
        if key is None:
            return None
    else:
        if digest is None:
            raise ApiError(401, "unauthorized",
                           "Missing API key: send 'Authorization: Bearer <key>'.")
        key = await services.key_cache.resolve(digest,
                                               lambda: services.db.key_for_hash(digest))
        if key is None:
            raise ApiError(401, "unauthorized", "Incorrect API key provided.")
    if key.revoked_at is not None:  # never cached: KeyCache keeps usable keys only
        raise ApiError(401, "unauthorized", "This API key has been revoked.")
    await services.limiter.check(key.id, key.rpm_limit)
    return key


# Declares the credential to OpenAPI (the security scheme of every route that depends on
# `require_key`); `authenticate` reads the header itself, so this one never refuses.
API_KEY_SCHEME = HTTPBearer(scheme_name="ApiKey", auto_error=False,
                            description="An API key (`vidgate keys create`).")


async def require_key(request: Request, _scheme: object = Security(API_KEY_SCHEME)) -> ApiKey:
    key = await authenticate(services_of(request), request.headers.get("authorization", ""))
    assert key is not None  # only `cached_only` answers None
    return key


# The authenticated key, as a route parameter type.
Owner = Annotated[ApiKey, Depends(require_key)]
