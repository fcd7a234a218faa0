"""One task store behind three route families: shapes of families B and C, tasks readable
across families with identical results, owner scoping and idempotency across families."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from support import await_for

GEN_KEYS = {"id", "task_id", "object", "model", "status", "progress", "created_at",
            "completed_at", "expires_at", "size", "error", "duration", "status_update_time",
            "url", "video_url", "thumbnail_url"}
CREATED_KEYS = {"id", "task_id", "model", "status", "status_update_time", "created_at"}
QUERY_KEYS = CREATED_KEYS | {"progress", "completed_at", "video_url", "url", "thumbnail_url",
                             "expires_at", "width", "height", "duration", "error"}
CREATE_PATHS = {"videos": "/v1/videos", "generations": "/v1/video/generations",
                "unified": "/v1/video/create"}


def read_paths(task_id: str) -> dict[str, str]:
    return {
        "videos": f"/v1/videos/{task_id}",
        "generations": f"/v1/video/generations/{task_id}",
        "unified": f"/v1/video/query?task_id={task_id}",
    }


async def create_on(app_client, family: str, key: str | None = None, **extra) -> dict:
    body = {"model": "sora-2", "prompt": f"a lighthouse ({family})", "size": "720x720", **extra}
    r = await app_client.client.post(CREATE_PATHS[family], json=body,
                                     headers=app_client.headers(key))
    assert r.status_code == 200, r.text
    return r.json()


async def read_all(app_client, task_id: str, key: str | None = None) -> dict[str, dict]:
    out = {}
    for family, path in read_paths(task_id).items():
        r = await app_client.client.get(path, headers=app_client.headers(key))
        assert r.status_code == 200, (path, r.text)
        out[family] = r.json()
    return out


async def wait_completed(app_client, family: str, task_id: str) -> dict:
    path = read_paths(task_id)[family]

    async def done():
        task = (await app_client.client.get(path, headers=app_client.headers())).json()
        return task if task["status"] in ("completed", "failed") else None

    task = await await_for(done, timeout=120, interval=0.1, what=f"{task_id} to finish")
    assert task["status"] == "completed", task
    return task


def common_view(family: str, task: dict) -> dict:
    """The fields every family shows, under one spelling, to compare them."""
    size = task["size"] if "size" in task else f"{task['width']}x{task['height']}"
    seconds = int(task["seconds"]) if family == "videos" else task["duration"]
    return {
        "id": task["id"], "model": task["model"], "status": task["status"],
        "progress": task["progress"], "created_at": task["created_at"],
        "completed_at": task["completed_at"], "expires_at": task["expires_at"],
        "url": task["url"], "video_url": task["video_url"],
        "thumbnail_url": task["thumbnail_url"], "error": task["error"], "size": size,
        "seconds": seconds,
    }


# ---- shapes --------------------------------------------------------------------------------

async def test_generations_create_and_query_shape(app_client):
    created = await create_on(app_client, "generations", size="1280x720", duration=5,
                              metadata={"order": "42"})
    assert set(created) == GEN_KEYS
    assert created["id"] == created["task_id"] and created["id"].startswith("video_")
    assert created["object"] == "video.generation"
    assert (created["status"], created["progress"], created["size"], created["duration"]) == (
        "queued", 0, "1280x720", 5)
    for key in ("completed_at", "expires_at", "error", "url", "video_url", "thumbnail_url"):
        assert created[key] is None, key
    assert created["status_update_time"] >= created["created_at"]
    task = await app_client.services.db.get_task(created["id"])
    assert (task.family, task.params["metadata"]) == ("generations", {"order": "42"})

    done = await wait_completed(app_client, "generations", created["id"])
    assert set(done) == GEN_KEYS
    assert done["progress"] == 100 and done["url"] == done["video_url"]
    assert done["thumbnail_url"] and done["expires_at"] > done["completed_at"]
    assert done["status_update_time"] >= done["completed_at"]


async def test_generations_defaults_and_aliases(app_client):
    h = app_client.headers()
    c = app_client.client
    r = await c.post("/v1/video/generations", json={"model": "sora-2", "prompt": "defaults"},
                     headers=h)
    assert (r.json()["size"], r.json()["duration"]) == ("1280x720", 4)
    r = await c.post("/v1/video/generations", headers=h, json={
        "model": "sora-2-pro", "prompt": "aliases", "width": 1024, "height": 1792,
        "seconds": "8", "n": 1})
    assert r.status_code == 200, r.text
    assert (r.json()["model"], r.json()["size"], r.json()["duration"]) == (
        "sora-2-pro", "1024x1792", 8)
    r = await c.post("/v1/video/generations", headers=h, json={
        "model": "sora-2", "prompt": "ratio", "aspect_ratio": "9:16"})
    assert r.json()["size"] == "720x1280"


async def test_generations_accepts_multipart_with_an_uploaded_image(app_client):
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 200, 0)).save(buf, format="PNG")
    r = await app_client.client.post(
        "/v1/video/generations",
        data={"model": "sora-2", "prompt": "from a form", "duration": "5", "size": "720x720",
              "metadata": '{"k": "v"}'},
        files={"input_reference": ("ref.png", buf.getvalue(), "image/png")},
        headers=app_client.headers())
    assert r.status_code == 200, r.text
    assert (r.json()["duration"], r.json()["size"]) == (5, "720x720")
    task = await app_client.services.db.get_task(r.json()["id"])
    assert task.params["metadata"] == {"k": "v"}
    assert await app_client.services.blobs.get_bytes(task.reference_key) == buf.getvalue()


async def test_unified_create_and_query_shape(app_client):
    r = await app_client.client.post(
        "/v1/video/create", headers=app_client.headers(),
        json={"model": "sora-2", "prompt": "a cat", "aspect_ratio": "1:1", "duration": 5})
    assert r.status_code == 200, r.text
    created = r.json()
    assert set(created) == CREATED_KEYS
    assert created["id"] == created["task_id"] and created["status"] == "queued"

    queried = (await app_client.client.get(f"/v1/video/query?id={created['id']}",
                                           headers=app_client.headers())).json()
    assert set(queried) == QUERY_KEYS
    assert (queried["width"], queried["height"], queried["duration"]) == (720, 720, 5)
    assert {k: queried[k] for k in CREATED_KEYS if k != "status_update_time"} == {
        k: created[k] for k in CREATED_KEYS if k != "status_update_time"}

    done = await wait_completed(app_client, "unified", created["id"])
    assert set(done) == QUERY_KEYS
    assert done["progress"] == 100 and done["url"] == done["video_url"] and done["expires_at"]
    assert done["error"] is None


# ---- one task store ------------------------------------------------------------------------

@pytest.mark.parametrize("origin", ["videos", "generations", "unified"])
async def test_task_is_the_same_on_every_family(app_client, origin):
    created = await create_on(app_client, origin)
    queued = await read_all(app_client, created["id"])
    assert {f: t["id"] for f, t in queued.items()} == dict.fromkeys(queued, created["id"])

    await wait_completed(app_client, origin, created["id"])
    views = {f: common_view(f, t) for f, t in (await read_all(app_client,
                                                               created["id"])).items()}
    first = views[origin]
    assert first["status"] == "completed" and first["progress"] == 100
    assert first["url"] and first["thumbnail_url"] and first["expires_at"]
    assert (first["size"], first["seconds"]) == ("720x720", 4)
    for family, view in views.items():
        assert view == first, family

    # the signed URL every family returned serves the video, without the API key
    video = await app_client.client.get(first["video_url"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    task = await app_client.services.db.get_task(created["id"])
    assert task.family == origin


@pytest.mark.parametrize("origin", ["videos", "generations", "unified"])
async def test_another_key_gets_404_on_every_family(app_client, origin):
    created = await create_on(app_client, origin)
    task_id = created["id"]
    other = await app_client.new_key("intruder")
    oh = app_client.headers(other)
    c = app_client.client
    checks = [
        ("GET", f"/v1/videos/{task_id}", "video_not_found"),
        ("GET", f"/v1/videos/{task_id}/content", "video_not_found"),
        ("DELETE", f"/v1/videos/{task_id}", "video_not_found"),
        ("GET", f"/v1/video/generations/{task_id}", "task_not_exist"),
        ("GET", f"/v1/video/query?task_id={task_id}", "task_not_exist"),
        ("GET", f"/v1/video/query?id={task_id}", "task_not_exist"),
    ]
    for method, path, code in checks:
        r = await c.request(method, path, headers=oh)
        assert r.status_code == 404, (method, path, r.text)
        body = r.json()
        assert body["error"]["code"] == code, (path, body)
        if path.startswith("/v1/video/"):
            assert body["code"] == code and body["data"] is None
    # and the owner still sees it everywhere
    assert set(await read_all(app_client, task_id)) == {"videos", "generations", "unified"}


async def test_idempotency_key_spans_families(app_client):
    c = app_client.client
    h = {**app_client.headers(), "Idempotency-Key": "order-7"}
    body = {"model": "sora-2", "prompt": "once", "size": "720x720"}
    first, second = await asyncio.gather(
        c.post("/v1/video/generations", json=body, headers=h),
        c.post("/v1/video/generations", json=body, headers=h))
    assert first.status_code == second.status_code == 200
    task_id = first.json()["id"]
    assert second.json()["id"] == task_id
    unified = await c.post("/v1/video/create", json=body, headers=h)
    videos = await c.post("/v1/videos", json=body, headers=h)
    assert unified.json()["id"] == videos.json()["id"] == task_id
    assert await app_client.count_tasks() == 1

    other = await app_client.new_key("other")
    theirs = await c.post("/v1/video/create", json=body,
                          headers={**app_client.headers(other), "Idempotency-Key": "order-7"})
    assert theirs.json()["id"] != task_id
    assert await app_client.count_tasks() == 2
