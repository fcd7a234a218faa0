"""The fast path (api/hot_routes.py) answers exactly as FastAPI's routes do.

Each comparison sends the same request twice: first with the key cache empty, which sends it
through FastAPI (and fills the cache), then again, which the hot path answers. A spy on
`HotRoutes.answer` records which path served each request, so a test cannot pass by
sending both through the same path.
"""

from __future__ import annotations

import pytest

from support import await_for
from vidgate.api.families import GENERATIONS, UNIFIED, VIDEOS, match_read

UNSTABLE_HEADERS = {"date", "server"}


def read_paths(task_id: str) -> dict[str, str]:
    return {
        "videos": f"/v1/videos/{task_id}",
        "generations": f"/v1/video/generations/{task_id}",
        "unified": f"/v1/video/query?task_id={task_id}",
    }


@pytest.fixture
def served_by(app_client):
    """A list that gets, per request, True when the hot path answered, False otherwise."""
    hot = app_client.app.hot_routes
    answered: list[bool] = []
    original = hot.answer

    async def spy(scope, receive, send):
        done = await original(scope, receive, send)
        if scope["type"] == "http":
            answered.append(done)
        return done

    hot.answer = spy
    return answered


async def create(app_client, size: str = "720x720", key: str | None = None) -> str:
    r = await app_client.client.post(
        "/v1/videos", json={"model": "sora-2", "prompt": "a lighthouse", "size": size,
                            "seconds": "4"},
        headers=app_client.headers(key))
    assert r.status_code == 200, r.text
    return r.json()["id"]


async def both_paths(app_client, served_by, path: str, key: str | None = None):
    """(FastAPI's answer, the hot path's answer) to the same GET."""
    app_client.services.key_cache.clear()
    # one request id for both, so even that header must be the same on both paths
    headers = {**app_client.headers(key), "X-Request-Id": "same-on-both-paths"}
    slow = await app_client.client.get(path, headers=headers)
    fast = await app_client.client.get(path, headers=headers)
    assert served_by[-2:] == [False, True], served_by
    return slow, fast


def assert_same(slow, fast) -> None:
    assert fast.status_code == slow.status_code
    assert fast.content == slow.content
    strip = lambda r: sorted((k, v) for k, v in r.headers.items()  # noqa: E731
                             if k not in UNSTABLE_HEADERS)
    assert strip(fast) == strip(slow)


async def test_running_and_finished_tasks_read_the_same_on_both_paths(app_client, served_by):
    task_id = await create(app_client)
    for path in read_paths(task_id).values():
        slow, fast = await both_paths(app_client, served_by, path)
        assert slow.status_code == 200
        if slow.json()["status"] == fast.json()["status"]:  # the engine may move in between
            if slow.json()["progress"] == fast.json()["progress"]:
                assert_same(slow, fast)

    async def completed():
        r = await app_client.client.get(f"/v1/videos/{task_id}", headers=app_client.headers())
        return r.json()["status"] == "completed"

    await await_for(completed, timeout=120, interval=0.1, what="the task to complete")
    for path in read_paths(task_id).values():
        slow, fast = await both_paths(app_client, served_by, path)
        assert slow.status_code == 200 and slow.json()["video_url"]
        assert_same(slow, fast)


async def test_poll_hint_header_only_while_running(app_client, served_by):
    task_id = await create(app_client)
    r = await app_client.client.get(f"/v1/videos/{task_id}", headers=app_client.headers())
    assert served_by[-1] is True
    if r.json()["status"] in ("queued", "in_progress"):
        assert r.headers["openai-poll-after-ms"] == "1000"
    assert r.headers["content-type"] == "application/json"


async def test_not_found_and_other_owners_tasks_read_the_same(app_client, served_by):
    other = await app_client.new_key()
    theirs = await create(app_client, key=other)
    for task_id in ("video_missing", theirs):
        for path in read_paths(task_id).values():
            slow, fast = await both_paths(app_client, served_by, path)
            assert slow.status_code == 404, slow.text
            assert_same(slow, fast)
    assert fast.json()["code"] == "task_not_exist"  # the unified family's envelope


async def test_rate_limited_key_is_counted_and_refused_on_the_fast_path(app_client, served_by):
    _, limited = await app_client.services.db.create_key("limited", rpm_limit=3)
    task_id = await create(app_client, key=limited)  # 1st request of the minute
    codes = []
    for _ in range(3):
        r = await app_client.client.get(f"/v1/videos/{task_id}",
                                        headers=app_client.headers(limited))
        codes.append(r.status_code)
    assert codes == [200, 200, 429]
    assert served_by[-2:] == [True, True]
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "rate_limited"


async def test_unknown_and_missing_keys_go_to_fastapi(app_client, served_by):
    task_id = await create(app_client)
    r = await app_client.client.get(f"/v1/videos/{task_id}",
                                    headers={"Authorization": "Bearer sk-vg-nope"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = await app_client.client.get(f"/v1/video/generations/{task_id}")
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    assert served_by[-2:] == [False, False]


async def test_revoked_key_is_refused_at_once(app_client, served_by):
    admin = {"Authorization": "Bearer admin-secret"}
    app_client.services.settings.admin_token = "admin-secret"
    key, secret = await app_client.services.db.create_key("short-lived")
    task_id = await create(app_client, key=secret)
    r = await app_client.client.get(f"/v1/videos/{task_id}", headers=app_client.headers(secret))
    assert r.status_code == 200 and served_by[-1] is True
    r = await app_client.client.post(f"/admin/keys/{key.id}/revoke", headers=admin)
    assert r.status_code == 200, r.text
    r = await app_client.client.get(f"/v1/videos/{task_id}", headers=app_client.headers(secret))
    assert r.status_code == 401 and served_by[-1] is False


async def test_unusual_queries_are_left_to_fastapi(app_client, served_by):
    task_id = await create(app_client)
    cases = {
        "/v1/video/query": 400,                                   # no id at all
        f"/v1/video/query?task_id={task_id}&task_id=x": None,     # repeated
        f"/v1/video/query?task_id={task_id}&extra=1": 200,        # unknown parameter
        f"/v1/videos/{task_id}/content?variant=nope": 400,        # not a status route
    }
    for path, status in cases.items():
        r = await app_client.client.get(path, headers=app_client.headers())
        assert served_by[-1] is False, path
        if status is not None:
            assert r.status_code == status, (path, r.text)
    r = await app_client.client.get(f"/v1/video/query?id={task_id}", headers=app_client.headers())
    assert r.status_code == 200 and r.json()["id"] == task_id and served_by[-1] is True


async def test_a_bug_on_the_fast_path_is_a_500_in_the_family_shape(app_client, served_by,
                                                                   monkeypatch):
    task_id = await create(app_client)

    async def broken(owner_id, task_id):
        raise RuntimeError("boom")

    monkeypatch.setattr(app_client.services.tasks, "get", broken)
    r = await app_client.client.get(f"/v1/video/generations/{task_id}",
                                    headers=app_client.headers())
    assert served_by[-1] is True
    assert r.status_code == 500
    assert r.json()["code"] == "internal_error" and "boom" not in r.text


def test_match_takes_only_plain_status_routes() -> None:
    assert match_read("/v1/videos/video_1", b"") == (VIDEOS, "video_1")
    assert match_read("/v1/video/generations/video_1", b"") == (GENERATIONS, "video_1")
    assert match_read("/v1/video/query", b"task_id=video_1") == (UNIFIED, "video_1")
    assert match_read("/v1/video/query", b"id=video_1") == (UNIFIED, "video_1")
    for path, query in [("/v1/videos/video_1/content", b""), ("/v1/videos/", b""),
                        ("/v1/videos", b""), ("/v1/video/query", b""),
                        ("/v1/video/query", b"task_id=a&id=b&x=1"),
                        ("/v1/video/query", b"task_id=a&task_id=b"),
                        ("/v1/video/generations/a/b", b""), ("/files/video_1/video", b"")]:
        assert match_read(path, query) is None, (path, query)


# ---- creates ---------------------------------------------------------------------------

CREATE_PATHS = {"videos": "/v1/videos", "generations": "/v1/video/generations",
                "unified": "/v1/video/create"}


@pytest.fixture
def api_only_settings(settings):
    """No engine in the process: created tasks stay queued, so two answers can be compared
    byte for byte."""
    settings.run_engine = False
    return settings


async def post_both_paths(app_client, served_by, path: str, body, key: str | None = None,
                          **headers):
    app_client.services.key_cache.clear()
    all_headers = {**app_client.headers(key), "X-Request-Id": "same-on-both-paths", **headers}
    slow = await app_client.client.post(path, json=body, headers=all_headers)
    fast = await app_client.client.post(path, json=body, headers=all_headers)
    assert served_by[-2:] == [False, True], served_by
    return slow, fast


@pytest.mark.parametrize("family", list(CREATE_PATHS))
async def test_creates_answer_the_same_on_both_paths(api_only_settings, app_client, served_by,
                                                     family):
    body = {"model": "sora-2", "prompt": "a lighthouse", "size": "1280x720", "seconds": 8}
    # the same Idempotency-Key returns the same task, so the answers can be identical
    slow, fast = await post_both_paths(app_client, served_by, CREATE_PATHS[family], body,
                                       **{"Idempotency-Key": f"same-{family}"})
    assert slow.status_code == 200, slow.text
    assert_same(slow, fast)
    assert await app_client.count_tasks() == 1
    other = await app_client.client.post(CREATE_PATHS[family], json=body,
                                         headers=app_client.headers())
    assert served_by[-1] is True and other.status_code == 200
    assert other.json()["id"] != fast.json()["id"]
    task = await app_client.services.tasks.get(
        app_client.services.key_cache.get(_digest(app_client.key)).id, other.json()["id"])
    assert (task.family, task.width, task.height, task.seconds) == (family, 1280, 720, 8)


def _digest(secret: str) -> str:
    from vidgate.store.keys import hash_key
    return hash_key(secret)


BAD_BODIES = [
    ({"prompt": "a cat", "model": "sora-9"}, 404),                 # videos: 404, else 400
    ({"prompt": "a cat", "model": "sora-2", "size": "640x480"}, 400),
    ({"prompt": "a cat", "model": "sora-2", "seconds": "7"}, 400),
    ({"model": "sora-2"}, 400),
    ({"prompt": "a cat", "model": "sora-2", "image_url": "http://127.0.0.1/x.png"}, 400),
    (["not", "an", "object"], 400),
]


@pytest.mark.parametrize("family", list(CREATE_PATHS))
@pytest.mark.parametrize(("body", "videos_status"), BAD_BODIES)
async def test_rejected_creates_answer_the_same_and_write_nothing(app_client, served_by, family,
                                                                  body, videos_status):
    slow, fast = await post_both_paths(app_client, served_by, CREATE_PATHS[family], body)
    assert slow.status_code == (videos_status if family == "videos" else 400), slow.text
    assert_same(slow, fast)
    assert await app_client.count_tasks() == 0
    assert app_client.blob_files() == []


@pytest.mark.parametrize("raw", [b"", b"{not json", b"[]" * 10])
async def test_unparseable_bodies_answer_the_same(app_client, served_by, raw):
    answers = []
    app_client.services.key_cache.clear()
    for _ in range(2):
        answers.append(await app_client.client.post(
            "/v1/video/generations", content=raw,
            headers={**app_client.headers(), "Content-Type": "application/json",
                     "X-Request-Id": "same-on-both-paths"}))
    assert served_by[-2:] == [False, True]
    assert answers[0].status_code == 400
    assert_same(*answers)
    assert await app_client.count_tasks() == 0


async def test_too_large_body_is_413_on_the_hot_path(app_client, served_by):
    app_client.services.settings.max_upload_bytes = 1000
    body = {"model": "sora-2", "prompt": "x" * 3_000_000}
    slow, fast = await post_both_paths(app_client, served_by, "/v1/videos", body)
    assert slow.status_code == 413
    assert_same(slow, fast)
    assert await app_client.count_tasks() == 0


async def test_short_balance_is_402_on_the_hot_path_and_charges_nothing(app_client, served_by):
    key, secret = await app_client.services.db.create_key("poor", balance_micro=1)
    body = {"model": "sora-2", "prompt": "a cat"}
    slow, fast = await post_both_paths(app_client, served_by, "/v1/video/create", body,
                                       key=secret)
    assert slow.status_code == 402 and slow.json()["code"] == "insufficient_quota"
    assert_same(slow, fast)
    assert await app_client.count_tasks() == 0
    assert (await app_client.services.db.get_key(key.id)).balance_micro == 1


async def test_multipart_creates_go_to_fastapi(app_client, served_by):
    r = await app_client.client.post(
        "/v1/videos", data={"model": "sora-2", "prompt": "a cat"},
        files={"unused": ("a.txt", b"x", "text/plain")}, headers=app_client.headers())
    r = await app_client.client.post(
        "/v1/videos", data={"model": "sora-2", "prompt": "a cat"},
        files={"unused": ("a.txt", b"x", "text/plain")}, headers=app_client.headers())
    assert r.status_code == 200, r.text
    assert served_by[-2:] == [False, False]


async def test_a_client_that_leaves_mid_body_creates_nothing(app_client, served_by):
    await app_client.client.get("/v1/videos/video_x", headers=app_client.headers())  # cache key
    messages = [{"type": "http.request", "body": b'{"model": "sora-2", ', "more_body": True},
                {"type": "http.disconnect"}]
    sent = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/videos", "query_string": b"",
             "headers": [(b"authorization", f"Bearer {app_client.key}".encode()),
                         (b"content-type", b"application/json")],
             "scheme": "http", "server": ("testserver", 80), "root_path": ""}
    await app_client.app(scope, receive, send)
    assert served_by[-1] is True
    assert sent == []
    assert await app_client.count_tasks() == 0
