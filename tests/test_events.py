"""Live progress over Server-Sent Events: rising progress then the final event, one poller
per task however many watch it, Last-Event-ID resume, ownership, and the other families."""

from __future__ import annotations

import asyncio

import orjson

from helpers_async import create, wait_completed
from vidgate.api.events import parse_event_id
from vidgate.store.keys import hash_key
from vidgate.watch import START, TaskWatch


def parse_sse(text: str) -> list[dict]:
    """Frames of an event stream, as the SSE spec reads them (comments skipped)."""
    events = []
    for block in text.split("\n\n"):
        fields: dict = {}
        for line in block.splitlines():
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            fields["data"] = orjson.loads(fields["data"])
            events.append(fields)
    return events


async def events_of(app_client, path: str, key: str | None = None, **headers) -> list[dict]:
    r = await app_client.client.get(path, headers={**app_client.headers(key), **headers},
                                    timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    return parse_sse(r.text)


def counting(watch: TaskWatch) -> list[int]:
    """Count the reads the hub makes (its one way to the database)."""
    calls = [0]
    read = watch._read

    async def counted(owner_id, task_id):
        calls[0] += 1
        return await read(owner_id, task_id)

    watch._read = counted
    return calls


async def test_watcher_sees_rising_progress_then_completed(app_client):
    app_client.services.watch.interval = 0.02
    video = await create(app_client, seconds="8")
    events = await events_of(app_client, f"/v1/videos/{video['id']}/events")
    names = [e["event"] for e in events]
    assert names[-1] == "completed" and set(names[:-1]) == {"progress"}, names
    progress = [e["data"]["progress"] for e in events]
    points = [tuple(map(int, e["id"].split("."))) for e in events]
    assert progress == sorted(progress) and points == sorted(set(points))  # each further
    assert any(0 < p < 100 for p in progress), progress  # a step between start and end
    final = events[-1]["data"]
    assert final["status"] == "completed" and final["object"] == "video"
    assert final["id"] == video["id"] and final["url"].startswith("http://testserver/files/")
    rank = {"queued": 0, "in_progress": 1, "completed": 2}
    assert [e["id"] for e in events] == [f"{rank[e['data']['status']]}.{e['data']['progress']}"
                                         for e in events]
    assert app_client.services.watch.watched == 0  # the watch is gone with its last watcher


async def test_two_hundred_watchers_cost_one_read_per_change(app_client):
    """No ticks at all: the in-process engine's own wakes carry 200 watchers of one task from
    its first progress to its end, with one database read per change it wrote."""
    watch = app_client.services.watch
    watch.interval = 3600  # the hub reads only when the engine wakes it
    reads = counting(watch)
    changes: list[str] = []
    engine = app_client.services.engine

    def told(task_id: str) -> None:
        changes.append(task_id)
        watch.wake(task_id)

    engine.on_change = told
    video = await create(app_client, seconds="8")
    watchers = [asyncio.create_task(events_of(app_client, f"/v1/videos/{video['id']}/events"))
                for _ in range(200)]
    results = await asyncio.wait_for(asyncio.gather(*watchers), timeout=120)
    woken = changes.count(video["id"])
    assert woken >= 2  # progress on the way, then the ending
    assert reads[0] <= woken + 1  # 200 watchers: the first read, then one per change
    assert all(r[-1]["event"] == "completed" for r in results)
    # the watchers join one by one while the engine works: each hears every change from the
    # moment it joined, so each one's events are the tail of the longest one's
    longest = max(results, key=len)
    assert any(e["event"] == "progress" and 0 < e["data"]["progress"] < 100
               for e in longest), longest
    assert all(r == longest[len(longest) - len(r):] for r in results)
    assert watch.watched == 0


async def test_last_event_id_resumes_after_what_was_seen(app_client):
    app_client.services.watch.interval = 0.02
    video = await create(app_client)
    await wait_completed(app_client, video["id"])
    path = f"/v1/videos/{video['id']}/events"
    full = await events_of(app_client, path)
    assert [e["event"] for e in full] == ["completed"] and full[0]["id"] == "2.100"
    assert await events_of(app_client, path, **{"Last-Event-ID": "1.40"}) == full
    assert await events_of(app_client, path, **{"Last-Event-ID": "2.100"}) == []
    # mid-run (through the hub: httpx's in-process transport hands over whole bodies)
    running = await create(app_client, seconds="8")
    owner = (await app_client.services.db.key_for_hash(hash_key(app_client.key))).id
    follower = await app_client.services.watch.open(owner, running["id"])
    async for task in follower:
        if task.progress > 0:
            break
    follower.close()
    seen = task.progress
    follower = await app_client.services.watch.open(owner, running["id"], after=(1, seen))
    resumed = [t async for t in follower]
    assert resumed[-1].status == "completed"
    assert all(t.progress > seen for t in resumed), ([t.progress for t in resumed], seen)


def test_event_ids_parse():
    assert parse_event_id("1.37") == (1, 37)
    assert parse_event_id(None) == START
    assert parse_event_id("garbage") == START and parse_event_id("1.x") == START


async def test_owner_scoped_and_authenticated(app_client):
    video = await create(app_client)
    other = await app_client.new_key()
    c = app_client.client
    r = await c.get(f"/v1/videos/{video['id']}/events", headers=app_client.headers(other))
    status_read = await c.get(f"/v1/videos/{video['id']}", headers=app_client.headers(other))
    assert r.status_code == 404 and r.json() == status_read.json()  # the status read's 404
    r = await c.get(f"/v1/video/generations/{video['id']}/events",
                    headers=app_client.headers(other))
    assert r.status_code == 404
    r = await c.get(f"/v1/videos/{video['id']}/events")
    assert r.status_code == 401
    r = await c.get("/v1/video/query/events", headers=app_client.headers())
    assert r.status_code == 400 and r.json()["error"]["param"] == "task_id"
    assert app_client.services.watch.watched == 0


async def test_other_families_stream_their_own_shapes(app_client):
    app_client.services.watch.interval = 0.02
    r = await app_client.client.post("/v1/video/generations", headers=app_client.headers(),
                                     json={"prompt": "waves", "model": "sora-2",
                                           "size": "720x720"})
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    generation = await events_of(app_client, f"/v1/video/generations/{task_id}/events")
    assert generation[-1]["event"] == "completed"
    assert generation[-1]["data"]["object"] == "video.generation"
    query = await events_of(app_client, f"/v1/video/query/events?task_id={task_id}")
    assert query[-1]["event"] == "completed" and query[-1]["data"]["task_id"] == task_id
    assert "width" in query[-1]["data"]  # the unified family's query shape


async def test_a_client_that_leaves_mid_stream_stops_being_watched(app_client):
    """Raw ASGI, so the disconnect arrives while the stream waits for the next step."""
    video = await create(app_client, seconds="8")
    watch = app_client.services.watch
    sent: list[dict] = []
    first_frame = asyncio.Event()
    leave = asyncio.Event()

    async def receive():
        await leave.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
        if message.get("body"):
            first_frame.set()

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": f"/v1/videos/{video['id']}/events",
             "raw_path": b"", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"),
                         (b"authorization", f"Bearer {app_client.key}".encode())],
             "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
    call = asyncio.create_task(app_client.app(scope, receive, send))
    await asyncio.wait_for(first_frame.wait(), 30)
    assert watch.watched == 1 and sent[0]["status"] == 200
    leave.set()
    await asyncio.wait_for(call, 30)
    assert watch.watched == 0  # the poller stopped with its only watcher


async def test_a_failing_read_answers_500_then_the_stream_recovers(app_client):
    watch = app_client.services.watch
    watch.interval = 0.02
    read = watch._read
    broken = [True]

    async def flaky(owner_id, task_id):
        if broken[0]:
            raise OSError("database unreachable")
        return await read(owner_id, task_id)

    watch._read = flaky
    video = await create(app_client)
    r = await app_client.client.get(f"/v1/videos/{video['id']}/events",
                                    headers=app_client.headers())
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert watch.watched == 0
    broken[0] = False
    events = await events_of(app_client, f"/v1/videos/{video['id']}/events")
    assert events[-1]["event"] == "completed"
