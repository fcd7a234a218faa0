"""API-key authentication: `Authorization: Bearer <key>` on every /v1 route."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Request

from ..errors import ApiError
from ..store.db import ApiKey, hash_key


class KeyCache:
    """Recently seen valid keys, for `ttl` seconds.

    A key lookup was a third of a status read's cost (bench/RESULTS.md). Only keys that were
    found are kept, so a new key works at once; a revocation made by another process takes
    effect within `ttl` (this process's admin API clears the cache itself). Money is never
    read from here: creates load the key afresh.
    """

    def __init__(self, ttl: float = 2.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._keys: dict[str, tuple[float, ApiKey]] = {}

    def get(self, digest: str) -> ApiKey | None:
        hit = self._keys.get(digest)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, digest: str, key: ApiKey) -> None:
        if self.ttl <= 0:
            return
        if len(self._keys) >= self.max_entries:
            self._keys.clear()
        self._keys[digest] = (time.monotonic() + self.ttl, key)

    def clear(self) -> None:
        self._keys.clear()


def bearer_digest(header: str) -> str | None:
    """The stored hash of the key in an `Authorization: Bearer <key>` header, or None."""
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        return None
    return hash_key(secret)


async def require_key(request: Request) -> ApiKey:
    digest = bearer_digest(request.headers.get("authorization", ""))
    if digest is None:
        raise ApiError(401, "unauthorized", "Missing API key: send 'Authorization: Bearer <key>'.")
    services = request.app.state.services
    key = services.key_cache.get(digest)
    if key is None:
        key = await services.db.key_for_hash(digest)
        if key is not None and key.revoked_at is None:
            services.key_cache.put(digest, key)
    if key is None:
        raise ApiError(401, "unauthorized", "Incorrect API key provided.")
    if key.revoked_at is not None:
        raise ApiError(401, "unauthorized", "This API key has been revoked.")
    await services.limiter.check(key.id, key.rpm_limit)
    return key


# The authenticated key, as a route parameter type.
Owner = Annotated[ApiKey, Depends(require_key)]
