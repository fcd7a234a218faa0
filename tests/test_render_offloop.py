"""The API keeps answering while a 1080p 20 s video renders (rendering is off the event loop)."""

from __future__ import annotations

import asyncio

from helpers_async import wait_completed
from vidgate.media.probe import probe


async def test_api_answers_while_1080p_20s_renders(app_client, tmp_path):
    app_client.services.engine.backends["sandbox"].fps = 24  # the default frame rate
    c = app_client.client
    r = await c.post("/v1/videos", headers=app_client.headers(),
                     json={"prompt": "a long aerial shot over mountains", "size": "1920x1080",
                           "seconds": "20"})
    vid = r.json()["id"]

    seen: list[int] = []
    answered_while_rendering = 0
    while True:
        # every read must come back while the render runs, not after it
        video, listing = await asyncio.wait_for(asyncio.gather(
            c.get(f"/v1/videos/{vid}", headers=app_client.headers()),
            c.get("/v1/videos?limit=5", headers=app_client.headers()),
        ), timeout=10)
        assert video.status_code == 200 and listing.status_code == 200
        body = video.json()
        if body["status"] == "completed":
            break
        assert body["status"] in ("queued", "in_progress"), body
        if body["status"] == "in_progress":
            answered_while_rendering += 1
            seen.append(body["progress"])
        await asyncio.sleep(0.2)

    assert answered_while_rendering >= 5
    assert seen == sorted(seen), "progress went down"
    assert len(set(seen)) >= 3, f"progress did not rise while rendering: {seen}"
    assert max(seen) < 100

    done = await wait_completed(app_client, vid)
    assert done["progress"] == 100 and done["seconds"] == "20"
    path = tmp_path / "long.mp4"
    path.write_bytes((await c.get(f"/v1/videos/{vid}/content",
                                  headers=app_client.headers())).content)
    info = probe(path)
    assert (info.width, info.height) == (1920, 1080)
    assert abs(info.duration - 20) < 0.15
    assert round(info.fps) == 24
