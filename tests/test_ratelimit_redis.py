"""Per-key request limits shared through the real Redis (several API processes, one budget)."""

from __future__ import annotations

import os
import secrets

import pytest

from support import in_ci
from vidgate.ratelimit import RateLimiter

REDIS_URL = os.environ.get("VIDGATE_REDIS_URL")


@pytest.fixture
def redis_url() -> str:
    if not REDIS_URL:
        if in_ci():
            pytest.fail("VIDGATE_REDIS_URL is not set: CI must run the Redis tests")
        pytest.skip("VIDGATE_REDIS_URL is not set")
    return REDIS_URL


async def test_two_limiters_share_one_budget_in_redis(redis_url):
    import redis

    first, second = RateLimiter(redis_url), RateLimiter(redis_url)
    assert await first.healthy(), f"Redis at {redis_url} is not reachable"
    key_id = "key_" + secrets.token_hex(6)
    await first.check(key_id, 4)
    await second.check(key_id, 4)
    await first.check(key_id, 4)
    await second.check(key_id, 4)
    with pytest.raises(Exception) as refused:
        await first.check(key_id, 4)
    assert refused.value.status == 429 and refused.value.code == "rate_limited"
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
    # the counters really live in Redis
    client = redis.Redis.from_url(redis_url)
    assert any(key_id.encode() in k for k in client.keys("*"))
    # another key has its own budget
    await second.check("key_" + secrets.token_hex(6), 4)


async def test_http_429_with_redis_backed_limits(settings, redis_url):
    import httpx

    from vidgate.app import create_app

    settings.redis_url = redis_url
    app = create_app(settings)
    async with app.lifespan():
        _, secret = await app.services.db.create_key("limited", rpm_limit=2)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            h = {"Authorization": f"Bearer {secret}"}
            codes = [(await client.get("/v1/videos", headers=h)).status_code for _ in range(3)]
            assert codes == [200, 200, 429]
            r = await client.post("/v1/video/generations", headers=h,
                                  json={"model": "sora-2", "prompt": "x"})
            assert r.status_code == 429 and r.headers["retry-after"].isdigit()
            assert r.json()["code"] == "rate_limited"
            assert r.json()["error"]["type"] == "rate_limit_error"
