"""Async helpers for in-process API tests."""

from __future__ import annotations

from support import await_for


async def create(app_client, key: str | None = None, **body) -> dict:
    body.setdefault("prompt", "a lighthouse at dusk")
    body.setdefault("size", "720x720")
    r = await app_client.client.post("/v1/videos", json=body, headers=app_client.headers(key))
    assert r.status_code == 200, r.text
    return r.json()


async def wait_completed(app_client, video_id: str, key: str | None = None,
                         timeout: float = 90, interval: float = 0.1) -> dict:
    async def done():
        r = await app_client.client.get(f"/v1/videos/{video_id}",
                                        headers=app_client.headers(key))
        video = r.json()
        return video if video["status"] in ("completed", "failed") else None

    video = await await_for(done, timeout=timeout, interval=interval,
                            what=f"{video_id} to finish")
    assert video["status"] == "completed", video
    return video
