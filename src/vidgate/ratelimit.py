"""Requests-per-minute limits per API key, with the `limits` library.

Counters live in memory by default and in Redis when VIDGATE_REDIS_URL is set, so several API
processes share one budget per key.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from .errors import ApiError


def storage_uri(redis_url: str | None) -> str:
    if not redis_url:
        return "async+memory://"
    if redis_url.startswith("async+"):
        return redis_url
    return "async+" + redis_url


class RateLimiter:
    def __init__(self, redis_url: str | None = None) -> None:
        self.storage = storage_from_string(storage_uri(redis_url))
        self.limiter = MovingWindowRateLimiter(self.storage)

    async def check(self, key_id: str, per_minute: int | None) -> None:
        """Count one request; raise a 429 with Retry-After when the key is over its limit."""
        if not per_minute:
            return
        item = RateLimitItemPerMinute(per_minute)
        if await self.limiter.hit(item, key_id):
            return
        stats = await self.limiter.get_window_stats(item, key_id)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise ApiError(
            429, "rate_limited",
            f"Rate limit of {per_minute} requests per minute reached for this API key.",
            headers={"Retry-After": str(retry_after)},
        )

    async def healthy(self) -> bool:
        return bool(await self.storage.check())
