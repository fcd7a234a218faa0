"""KeyCache.resolve: concurrent misses of one key share one lookup (api/key_cache.py)."""

from __future__ import annotations

import asyncio

import pytest

from vidgate.api.key_cache import KeyCache
from vidgate.domain import ApiKey


def a_key(revoked_at: int | None = None) -> ApiKey:
    return ApiKey(id="key_1", name="", prefix="sk-vg-", created_at=0, revoked_at=revoked_at)


class SlowLookup:
    def __init__(self, answer) -> None:
        self.answer = answer
        self.calls = 0
        self.release = asyncio.Event()

    async def __call__(self):
        self.calls += 1
        await self.release.wait()
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


async def test_concurrent_misses_share_one_lookup_and_the_answer_is_cached():
    cache, lookup = KeyCache(ttl=60), SlowLookup(a_key())
    waiting = [asyncio.create_task(cache.resolve("d", lookup)) for _ in range(32)]
    await asyncio.sleep(0)
    lookup.release.set()
    keys = await asyncio.gather(*waiting)
    assert lookup.calls == 1 and {k.id for k in keys} == {"key_1"}
    assert (await cache.resolve("d", lookup)).id == "key_1" and lookup.calls == 1


async def test_an_expired_entry_is_looked_up_again():
    cache, lookup = KeyCache(ttl=0.01), SlowLookup(a_key())
    lookup.release.set()
    await cache.resolve("d", lookup)
    await asyncio.sleep(0.05)
    await cache.resolve("d", lookup)
    assert lookup.calls == 2


@pytest.mark.parametrize("answer", [None, a_key(revoked_at=1)])
async def test_unknown_and_revoked_keys_are_shared_but_never_cached(answer):
    cache, lookup = KeyCache(ttl=60), SlowLookup(answer)
    waiting = [asyncio.create_task(cache.resolve("d", lookup)) for _ in range(5)]
    await asyncio.sleep(0)
    lookup.release.set()
    assert [k == answer for k in await asyncio.gather(*waiting)] == [True] * 5
    assert lookup.calls == 1
    await cache.resolve("d", lookup)
    assert lookup.calls == 2


async def test_a_failed_lookup_fails_every_waiter_and_the_next_one_retries():
    cache, lookup = KeyCache(ttl=60), SlowLookup(RuntimeError("db down"))
    waiting = [asyncio.create_task(cache.resolve("d", lookup)) for _ in range(3)]
    await asyncio.sleep(0)
    lookup.release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results) and lookup.calls == 1
    lookup.answer = a_key()
    assert (await cache.resolve("d", lookup)).id == "key_1" and lookup.calls == 2


async def test_a_cancelled_waiter_does_not_cancel_the_others():
    cache, lookup = KeyCache(ttl=60), SlowLookup(a_key())
    first = asyncio.create_task(cache.resolve("d", lookup))
    second = asyncio.create_task(cache.resolve("d", lookup))
    await asyncio.sleep(0)
    first.cancel()
    lookup.release.set()
    assert (await second).id == "key_1"
    with pytest.raises(asyncio.CancelledError):
        await first
