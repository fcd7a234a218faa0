"""The status-read fast path (api/status_reads.py) answers exactly as FastAPI's routes do.

Each comparison reads the same task twice: first with the key cache empty, which sends the
request through FastAPI (and fills the cache), then again, which the fast path answers. A spy
on `StatusReads.answer` records which path served each request, so a test cannot pass by
reading the same path twice.
"""

from __future__ import annotations

import pytest

from support import await_for
from vidgate.api.status_reads import GENERATIONS, QUERY, VIDEOS, match

UNSTABLE_HEADERS = {"date", "server"}


def read_paths(task_id: str) -> dict[str, str]:
    return {
        "videos": f"/v1/videos/{task_id}",
        "generations": f"/v1/video/generations/{task_id}",
        "unified": f"/v1/video/query?task_id={task_id}",
    }


@pytest.fixture
def served_by(app_client):
    """A list that gets, per request, True when the fast path answered, False otherwise."""
    reads = app_client.app.status_reads
    answered: list[bool] = []
    original = reads.answer

    async def spy(scope, send):
        done = await original(scope, send)
        if scope["type"] == "http":
            answered.append(done)
        return done

    reads.answer = spy
    return answered


async def create(app_client, size: str = "720x720", key: str | None = None) -> str:
    r = await app_client.client.post(
        "/v1/videos", json={"model": "sora-2", "prompt": "a lighthouse", "size": size,
                            "seconds": "4"},
        headers=app_client.headers(key))
    assert r.status_code == 200, r.text
    return r.json()["id"]


async def both_paths(app_client, served_by, path: str, key: str | None = None):
    """(FastAPI's answer, the fast path's answer) to the same GET."""
    app_client.services.key_cache.clear()
    slow = await app_client.client.get(path, headers=app_client.headers(key))
    fast = await app_client.client.get(path, headers=app_client.headers(key))
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
    assert match("/v1/videos/video_1", b"") == (VIDEOS, "video_1")
    assert match("/v1/video/generations/video_1", b"") == (GENERATIONS, "video_1")
    assert match("/v1/video/query", b"task_id=video_1") == (QUERY, "video_1")
    assert match("/v1/video/query", b"id=video_1") == (QUERY, "video_1")
    for path, query in [("/v1/videos/video_1/content", b""), ("/v1/videos/", b""),
                        ("/v1/videos", b""), ("/v1/video/query", b""),
                        ("/v1/video/query", b"task_id=a&id=b&x=1"),
                        ("/v1/video/query", b"task_id=a&task_id=b"),
                        ("/v1/video/generations/a/b", b""), ("/files/video_1/video", b"")]:
        assert match(path, query) is None, (path, query)
