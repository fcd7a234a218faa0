"""Signed result URLs: served without a key until expiry; tampering or expiry is a 403."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import sqlalchemy as sa

from helpers_async import create, wait_completed
from vidgate.signing import signature
from vidgate.store.schema import tasks

VIDEO_KEYS = {"id", "object", "model", "status", "progress", "created_at", "completed_at",
              "expires_at", "prompt", "size", "seconds", "quality", "remixed_from_video_id",
              "error", "url", "video_url", "thumbnail_url"}


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_video_object_shape_and_signed_urls(app_client):
    created = await create(app_client)
    assert set(created) == VIDEO_KEYS
    assert created["status"] == "queued" and created["progress"] == 0
    for k in ("url", "video_url", "thumbnail_url", "expires_at", "completed_at", "error",
              "remixed_from_video_id"):
        assert created[k] is None
    assert created["id"].startswith("video_") and len(created["id"]) == 38

    video = await wait_completed(app_client, created["id"])
    assert set(video) == VIDEO_KEYS
    assert video["url"] == video["video_url"]
    now = time.time()
    ttl = app_client.services.settings.url_ttl_seconds
    assert now + ttl / 2 - 5 <= video["expires_at"] <= now + ttl + 5

    c = app_client.client
    direct = await c.get(f"/v1/videos/{video['id']}/content", headers=app_client.headers())
    signed = await c.get(_path(video["url"]))  # no Authorization header
    assert signed.status_code == 200
    assert signed.headers["content-type"] == "video/mp4"
    assert signed.content == direct.content and len(direct.content) > 1000
    thumb = await c.get(_path(video["thumbnail_url"]))
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"

    # the same URL for every read within the half-lifetime, so clients and caches agree
    again = (await c.get(f"/v1/videos/{video['id']}", headers=app_client.headers())).json()
    assert again["url"] == video["url"] and again["expires_at"] == video["expires_at"]


async def test_range_and_etag(app_client):
    video = await wait_completed(app_client, (await create(app_client))["id"])
    c = app_client.client
    full = await c.get(_path(video["url"]))
    assert int(full.headers["content-length"]) == len(full.content)
    etag = full.headers["etag"]
    part = await c.get(_path(video["url"]), headers={"Range": "bytes=10-109"})
    assert part.status_code == 206
    assert part.content == full.content[10:110]
    assert part.headers["content-range"] == f"bytes 10-109/{len(full.content)}"
    part = await c.get(f"/v1/videos/{video['id']}/content", headers={
        **app_client.headers(), "Range": "bytes=-50"})
    assert part.status_code == 206 and part.content == full.content[-50:]
    cached = await c.get(_path(video["url"]), headers={"If-None-Match": etag})
    assert cached.status_code == 304


async def test_tampered_and_expired_signatures_are_403(app_client):
    video = await wait_completed(app_client, (await create(app_client))["id"])
    c = app_client.client
    parts = urlsplit(video["url"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    exp, sig = int(query["exp"]), query["sig"]
    vid = video["id"]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    secret = app_client.services.settings.secret
    past = int(time.time()) - 10
    cases = [
        f"/files/{vid}/video?exp={exp}&sig={flipped}",                      # tampered signature
        f"/files/{vid}/video?exp={exp + 3600}&sig={sig}",                   # extended expiry
        f"/files/{vid}/thumbnail?exp={exp}&sig={sig}",                      # other variant
        f"/files/{vid}/video?exp={past}&sig={signature(secret, vid, 'video', past)}",  # expired
        f"/files/{vid}/video?exp={exp}",                                    # no signature
        f"/files/{vid}/video?exp=soon&sig={sig}",                           # garbage expiry
    ]
    for path in cases:
        r = await c.get(path)
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"]["type"] == "permission_error"
        assert r.json()["error"]["code"] == "forbidden"


async def test_retention_passed_nulls_urls_and_content_is_410(app_client):
    video = await wait_completed(app_client, (await create(app_client))["id"])
    old_url = video["url"]
    async with app_client.services.db.engine.begin() as conn:
        await conn.execute(tasks.update().where(tasks.c.id == video["id"])
                           .values(assets_expire_at=int(time.time()) - 1))
    c = app_client.client
    after = (await c.get(f"/v1/videos/{video['id']}", headers=app_client.headers())).json()
    assert after["status"] == "completed"
    assert after["url"] is None and after["video_url"] is None
    assert after["thumbnail_url"] is None and after["expires_at"] is None
    r = await c.get(f"/v1/videos/{video['id']}/content", headers=app_client.headers())
    assert r.status_code == 410 and r.json()["error"]["code"] == "video_expired"
    # a URL handed out earlier is capped at the retention end, so it no longer works either
    assert (await c.get(_path(old_url))).status_code in (403, 410)

    # the janitor removes the bytes; the task stays readable
    assert any(video["id"] in str(p) for p in app_client.blob_files())
    assert await app_client.services.janitor.sweep() == 1
    assert not any(video["id"] in str(p) for p in app_client.blob_files())
    assert await app_client.services.janitor.sweep() == 0
    again = await c.get(f"/v1/videos/{video['id']}", headers=app_client.headers())
    assert again.status_code == 200 and again.json()["url"] is None
    r = await c.get(f"/v1/videos/{video['id']}/content", headers=app_client.headers())
    assert r.status_code == 410


async def test_signed_url_on_a_live_server(live_server):
    """The same over real HTTP: URL from one request, fetched by a plain client."""
    r = httpx.post(live_server.api + "/videos", headers=live_server.headers(),
                   json={"prompt": "harbour at night", "size": "720x720"})
    vid = r.json()["id"]

    def done():
        v = httpx.get(f"{live_server.api}/videos/{vid}", headers=live_server.headers()).json()
        return v if v["status"] == "completed" else None

    from support import wait_for

    video = wait_for(done, timeout=90, what="render")
    assert video["url"].startswith(live_server.url + "/files/")
    got = httpx.get(video["url"])
    assert got.status_code == 200 and got.content[4:8] == b"ftyp"


async def test_counts_unchanged_by_rejected_signed_urls(app_client):
    before = await app_client.count_tasks()
    r = await app_client.client.get("/files/video_x/video?exp=1&sig=00")
    assert r.status_code == 403
    assert await app_client.count_tasks() == before
    async with app_client.services.db.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(tasks))).scalar() \
            == before
