"""The pages and docs vidgate serves itself, and the admin views the dashboard reads."""

from __future__ import annotations

import re
import warnings

from helpers_async import create, wait_completed

ADMIN = {"Authorization": "Bearer admin-secret"}


async def test_pages_and_their_assets_come_from_the_package(app_client):
    c = app_client.client
    for path, marker in (("/", 'id="create-form"'), ("/dashboard", 'id="login-form"')):
        r = await c.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert marker in r.text
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assets = re.findall(r'(?:src|href)="(/ui/[^"]+)"', r.text)
        assert len(assets) == 3
        for asset in assets:
            assert (await c.get(asset)).status_code == 200, asset
        assert "http://" not in r.text and "https://" not in r.text  # nothing from elsewhere


async def test_docs_load_swagger_ui_and_redoc_offline(app_client):
    c = app_client.client
    for path in ("/docs", "/redoc"):
        html = (await c.get(path)).text
        urls = re.findall(r'(?:src|href)="([^"]+)"|url: \'([^\']+)\'', html)
        urls = [a or b for a, b in urls]
        assert urls and all(u.startswith("/") for u in urls), urls  # no CDN
        for url in urls:
            r = await c.get(url)
            assert r.status_code == 200 and len(r.content) > 1000 or url.endswith(".png"), url
    js = await c.get("/ui/docs/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in js.content


async def test_openapi_has_no_duplicate_operation_ids(app_client):
    app_client.app.api.openapi_schema = None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FastAPI warns "Duplicate Operation ID"
        r = await app_client.client.get("/openapi.json")
    assert r.status_code == 200
    ids = [op["operationId"] for item in r.json()["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    paths = r.json()["paths"]
    assert "/v1/videos/{video_id}/events" in paths and "/v1/video/query/events" in paths
    assert set(paths["/files/{task_id}/{variant}"]) == {"get", "head"}


async def test_models_say_what_a_request_may_ask(app_client):
    data = (await app_client.client.get("/v1/models", headers=app_client.headers())).json()
    sora = next(m for m in data["data"] if m["id"] == "sora-2")
    assert sora["seconds"] == [4, 5, 8, 10, 12, 15, 16, 20] and sora["default_seconds"] == 4
    assert "1280x720" in sora["sizes"]


async def test_admin_channels_and_failed_tasks(app_client):
    app_client.services.settings.admin_token = "admin-secret"
    c = app_client.client
    assert (await c.get("/admin/channels")).status_code == 401
    assert (await c.get("/admin/tasks", headers=app_client.headers())).status_code == 403
    video = await create(app_client)
    await wait_completed(app_client, video["id"])
    channels = (await c.get("/admin/channels", headers=ADMIN)).json()["data"]
    assert channels and channels[0]["kind"] == "sandbox" and "sora-2" in channels[0]["models"]
    assert channels[0]["breaker"]["state"] == "closed" and channels[0]["in_flight"] == 0
    # a failure, as the engine records one (through the store the engine writes with)
    failing = await create(app_client, prompt="will fail")
    await wait_completed(app_client, failing["id"])
    import sqlalchemy as sa

    from vidgate.store.schema import tasks
    async with app_client.services.db.engine.begin() as conn:
        await conn.execute(sa.update(tasks).where(tasks.c.id == failing["id"]).values(
            status="failed", error_code="moderation_blocked", error_message="nope"))
    failed = (await c.get("/admin/tasks?status=failed&limit=5", headers=ADMIN)).json()["data"]
    assert [t["id"] for t in failed] == [failing["id"]]
    assert failed[0]["error"] == {"code": "moderation_blocked", "message": "nope"}
    everything = (await c.get("/admin/tasks", headers=ADMIN)).json()["data"]
    assert [t["id"] for t in everything] == [failing["id"], video["id"]]
    r = await c.get("/admin/tasks?status=exploded", headers=ADMIN)
    assert r.status_code == 400 and r.json()["error"]["param"] == "status"
    r = await c.get("/admin/tasks?limit=0", headers=ADMIN)
    assert r.status_code in (400, 422)
