"""Requests-per-minute limits per API key, with the `limits` library.

Counters live in memory by default and in Redis when VIDGATE_REDIS_URL is set, so several API
processes share one budget per key. When the counter store cannot be reached, a limited key's
request is served uncounted (fail open, with a warning in the log at most every 30 s), or
refused with 503 and Retry-After when VIDGATE_RATELIMIT_FAIL_CLOSED is set: never a 500.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItemPerMinute
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from .errors import ApiError

log = logging.getLogger("vidgate.ratelimit")
_WARN_EVERY_SECONDS = 30.0


def storage_uri(redis_url: str | None) -> str:
    if not redis_url:
        return "async+memory://"
    if redis_url.startswith("async+"):
        return redis_url
    return "async+" + redis_url


class RateLimiter:
    def __init__(self, redis_url: str | None = None, *, fail_closed: bool = False) -> None:
        self.storage = storage_from_string(storage_uri(redis_url))
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.fail_closed = fail_closed
        self._warned_at = -_WARN_EVERY_SECONDS

    async def check(self, key_id: str, per_minute: int | None) -> None:
        """Count one request; raise a 429 with Retry-After when the key is over its limit."""
        if not per_minute:
            return
        item = RateLimitItemPerMinute(per_minute)
        try:
            if await self.limiter.hit(item, key_id):
                return
            stats = await self.limiter.get_window_stats(item, key_id)
        except Exception as exc:  # the counter store is down (connection, timeout, protocol)
            self._unavailable(exc)
            return
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise ApiError(
            429, "rate_limited",
            f"Rate limit of {per_minute} requests per minute reached for this API key.",
            headers={"Retry-After": str(retry_after)},
        )

    def _unavailable(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("rate-limit store unreachable (%r): %s", exc,
                        "refusing limited keys" if self.fail_closed else "limits not enforced")
        if self.fail_closed:
            raise ApiError(
                503, "service_unavailable",
                "Rate limits cannot be checked right now; retry shortly.",
                type="server_error", headers={"Retry-After": "5"},
            ) from exc

    async def healthy(self) -> bool:
        try:
            return bool(await self.storage.check())
        except Exception:
            return False
