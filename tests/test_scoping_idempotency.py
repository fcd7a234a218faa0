"""Owner scoping (another key sees nothing) and Idempotency-Key on create."""

from __future__ import annotations

import asyncio

from helpers_async import create, wait_completed


async def test_second_key_sees_none_of_the_first_keys_tasks(app_client):
    c = app_client.client
    mine = await wait_completed(app_client, (await create(app_client))["id"])
    other = await app_client.new_key("intruder")
    oh = app_client.headers(other)
    vid = mine["id"]
    files_before = sorted(app_client.blob_files())
    tasks_before = await app_client.count_tasks()

    for method, path, kwargs in [
        ("GET", f"/v1/videos/{vid}", {}),
        ("GET", f"/v1/videos/{vid}/content", {}),
        ("GET", f"/v1/videos/{vid}/content?variant=thumbnail", {}),
        ("POST", f"/v1/videos/{vid}/remix", {"json": {"prompt": "mine now"}}),
        ("DELETE", f"/v1/videos/{vid}", {}),
    ]:
        r = await c.request(method, path, headers=oh, **kwargs)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json() == {"error": {"message": "No video found with that id.",
                                      "type": "not_found_error", "param": None,
                                      "code": "video_not_found"}}
    listed = (await c.get("/v1/videos", headers=oh)).json()
    assert listed == {"object": "list", "data": [], "first_id": None, "last_id": None,
                      "has_more": False}
    # an `after` cursor naming someone else's task reveals nothing either
    assert (await c.get(f"/v1/videos?after={vid}", headers=oh)).json()["data"] == []

    # nothing was removed, added or changed by the attempts
    assert await app_client.count_tasks() == tasks_before
    assert sorted(app_client.blob_files()) == files_before
    still = (await c.get(f"/v1/videos/{vid}", headers=app_client.headers())).json()
    assert still["status"] == "completed"
    assert (await c.get(f"/v1/videos/{vid}/content",
                        headers=app_client.headers())).status_code == 200


async def test_idempotency_key_returns_the_same_task(app_client):
    c = app_client.client
    h = {**app_client.headers(), "Idempotency-Key": "order-42"}
    body = {"prompt": "one and only", "size": "720x720"}
    first, second = await asyncio.gather(
        c.post("/v1/videos", json=body, headers=h), c.post("/v1/videos", json=body, headers=h))
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    third = await c.post("/v1/videos", json=body, headers=h)
    assert third.json()["id"] == first.json()["id"]
    assert await app_client.count_tasks() == 1

    # the same idempotency key from another owner is another task
    other = await app_client.new_key("other")
    theirs = await c.post("/v1/videos", json=body,
                          headers={**app_client.headers(other), "Idempotency-Key": "order-42"})
    assert theirs.json()["id"] != first.json()["id"]
    # and a new key value makes a new task
    fresh = await c.post("/v1/videos", json=body,
                         headers={**app_client.headers(), "Idempotency-Key": "order-43"})
    assert fresh.json()["id"] != first.json()["id"]
    assert await app_client.count_tasks() == 3


async def test_idempotent_multipart_with_reference_leaves_one_blob(app_client):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 200, 0)).save(buf, format="PNG")
    h = {**app_client.headers(), "Idempotency-Key": "with-image"}
    ids = set()
    app_client.services.engine.stop()  # keep the reference in place for counting
    for _ in range(3):
        r = await app_client.client.post(
            "/v1/videos", data={"prompt": "green"},
            files={"input_reference": ("g.png", buf.getvalue(), "image/png")}, headers=h)
        assert r.status_code == 200, r.text
        ids.add(r.json()["id"])
    assert len(ids) == 1
    assert await app_client.count_tasks() == 1
    assert [p.name for p in app_client.blob_files()] == ["reference"]


async def test_delete_unfinished_cancels_and_frees(app_client):
    c = app_client.client
    created = await create(app_client, seconds="8")
    r = await c.delete(f"/v1/videos/{created['id']}", headers=app_client.headers())
    assert r.json() == {"id": created["id"], "object": "video.deleted", "deleted": True}
    assert (await c.get(f"/v1/videos/{created['id']}",
                        headers=app_client.headers())).status_code == 404

    async def cancelled():
        events = await app_client.services.db.events(created["id"])
        return events == [(created["id"], "failed")]

    from support import await_for

    await await_for(cancelled, timeout=60, what="the engine to cancel the deleted task")
    task = await app_client.services.db.get_task(created["id"])
    assert task is None  # deleted rows stay hidden
    await await_for(lambda: _no_files(app_client), timeout=30, what="assets to be removed")


async def _no_files(app_client) -> bool:
    return app_client.blob_files() == []
