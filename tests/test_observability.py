"""Metrics, request ids and readiness, in process (observability/, api/ops.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import os
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import TEST_DB, await_for
from vidgate.app import create_app
from vidgate.observability import logs, scrape
from vidgate.observability.metrics import UNMATCHED

ADMIN = {"Authorization": "Bearer admin-token"}
BODY = {"model": "sora-2", "prompt": "a lighthouse", "size": "720x720", "seconds": "4"}


@pytest.fixture
async def client(settings):
    app = create_app(dataclasses.replace(settings, admin_token="admin-token"))
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            c.app = app
            yield c


def samples(text: str) -> dict[tuple, float]:
    """Every sample as (name, sorted labels) -> value, read by prometheus_client's parser."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    """How much the samples of `name` whose labels include `labels` grew, summed."""
    def total(found: dict) -> float:
        return sum(v for (n, ls), v in found.items()
                   if n == name and set(labels.items()) <= set(ls))
    return total(after) - total(before)


async def scrape_now(c) -> dict:
    r = await c.get("/metrics", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


async def test_metrics_count_what_a_scripted_run_did(client, monkeypatch):
    monkeypatch.setattr(scrape, "CACHE_SECONDS", 0.0)  # this test reads the gauges twice
    db = client.app.services.db
    _, key = await db.create_key("metered", balance_micro=100_000_000)
    auth = {"Authorization": f"Bearer {key}"}
    hot = client.app.hot_routes
    fast_reads = 0
    original = hot.answer

    async def spy(scope, receive, send):
        nonlocal fast_reads
        done = await original(scope, receive, send)
        if done and scope["method"] == "GET":
            fast_reads += 1
        return done

    hot.answer = spy
    before = await scrape_now(client)

    created = []
    for _ in range(3):
        r = await client.post("/v1/videos", json=BODY, headers=auth)
        assert r.status_code == 200, r.text
        created.append(r.json())
    cancelled = created[2]["id"]
    assert (await client.delete(f"/v1/videos/{cancelled}", headers=auth)).status_code == 200
    reads = 0

    async def ended() -> bool:
        nonlocal reads
        states = []
        for task in created[:2]:
            r = await client.get(f"/v1/videos/{task['id']}", headers=auth)
            reads += 1
            states.append(r.json()["status"])
        return all(s == "completed" for s in states)

    await await_for(ended, timeout=120, interval=0.2, what="two renders")
    await await_for(lambda: _ended(db, cancelled), what="the cancel to be applied")
    missing = await client.get("/v1/videos/nope/extra/path", headers=auth)
    assert missing.status_code == 404
    after = await scrape_now(client)

    assert delta(before, after, "vidgate_tasks_created_total", model="sora-2",
                 family="videos") == 3
    assert delta(before, after, "vidgate_tasks_completed_total", model="sora-2",
                 channel="sandbox") == 2
    assert delta(before, after, "vidgate_tasks_failed_total", model="sora-2",
                 code="cancelled") == 1
    assert delta(before, after, "vidgate_http_requests_total", route="/v1/videos",
                 method="POST", status="200") == 3
    # every status read is counted under its template, the fast path's included (FastAPI
    # answers the first read after the key cache lapses)
    assert 0 < fast_reads <= reads
    assert delta(before, after, "vidgate_http_requests_total", route="/v1/videos/{video_id}",
                 method="GET", status="200") == reads
    assert delta(before, after, "vidgate_http_request_duration_seconds_count",
                 route="/v1/videos/{video_id}", method="GET") == reads
    assert delta(before, after, "vidgate_http_requests_total", route=UNMATCHED,
                 status="404") == 1
    assert not any("nope" in str(labels) for _, labels in after)  # never the raw path
    assert delta(before, after, "vidgate_completion_lag_seconds_count", channel="sandbox") == 2
    assert delta(before, after, "vidgate_channel_polls_total", channel="sandbox",
                 outcome="completed") == 2
    assert delta(before, after, "vidgate_channel_submits_total", channel="sandbox",
                 outcome="accepted") >= 2
    assert delta(before, after, "vidgate_mirrored_bytes_total", channel="sandbox") > 0
    # money: three holds taken, each settled exactly (kept or given back)
    held = delta(before, after, "vidgate_credits_held_micro_total")
    assert held > 0
    settled = (delta(before, after, "vidgate_credits_settled_micro_total", outcome="charged")
               + delta(before, after, "vidgate_credits_settled_micro_total",
                       outcome="refunded"))
    assert settled == held
    # gauges read from this database at scrape time
    assert after[("vidgate_tasks", (("status", "completed"),))] == 2
    assert after[("vidgate_tasks", (("status", "failed"),))] == 1
    assert after[("vidgate_tasks", (("status", "queued"),))] == 0
    assert after[("vidgate_credits_held_now_micro", ())] == 0
    assert after[("vidgate_channel_jobs_in_flight", (("channel", "sandbox"),))] == 0
    assert after[("vidgate_channel_breaker_state", (("channel", "sandbox"),))] == 0
    assert ("vidgate_webhook_outbox_depth", ()) in after


async def _ended(db, task_id: str) -> bool:
    """The task ended (deleted tasks are hidden from the store's reads: ask the table)."""
    import sqlalchemy as sa

    from vidgate.store.schema import tasks

    async with db.engine.connect() as conn:
        status = (await conn.execute(sa.select(tasks.c.status).where(tasks.c.id == task_id))
                  ).scalar()
    return status == "failed"


async def test_scrape_gauges_cost_one_query_per_interval(client, monkeypatch):
    statements = []
    from sqlalchemy import event

    def count(_conn, _cursor, statement, *_args):
        if "UNION ALL" in statement:  # the engine and webhook sender query meanwhile
            statements.append(statement)

    event.listen(client.app.services.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        for _ in range(5):
            await scrape_now(client)
    finally:
        event.remove(client.app.services.db.engine.sync_engine, "before_cursor_execute", count)
    assert len(statements) == 1


async def test_metrics_need_the_admin_token_unless_public(client, settings):
    assert (await client.get("/metrics")).status_code == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "forbidden"
    public = create_app(dataclasses.replace(settings, metrics_public=True))
    async with public.lifespan():
        transport = httpx.ASGITransport(app=public)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.get("/metrics")
            assert r.status_code == 200 and "vidgate_http_requests_total" in r.text


async def test_every_answer_carries_a_request_id(app_client):
    c = app_client.client
    answers = [
        await c.get("/healthz"),
        await c.get("/nowhere"),
        await c.post("/v1/videos", json=BODY),  # no key: 401 from FastAPI
        await c.post("/v1/videos", json=BODY, headers=app_client.headers()),
    ]
    task_id = answers[-1].json()["id"]
    answers.append(await c.get(f"/v1/videos/{task_id}", headers=app_client.headers()))
    answers.append(await c.get(f"/v1/videos/{task_id}", headers=app_client.headers()))
    ids = [a.headers["x-request-id"] for a in answers]
    assert all(ids) and len(set(ids)) == len(ids)
    given = await c.get(f"/v1/videos/{task_id}", headers={**app_client.headers(),
                                                          "X-Request-Id": "trace-42.a:b"})
    assert given.headers["x-request-id"] == "trace-42.a:b"
    for bad in ("x" * 129, "has space", "quote\"d", ""):
        r = await c.get("/healthz", headers={"X-Request-Id": bad})
        assert r.headers["x-request-id"] != bad and r.headers["x-request-id"].startswith("req_")


@pytest.fixture
def json_log():
    """Every log line (root logger, INFO and up) as parsed JSON, through vidgate's handler."""
    stream = io.StringIO()
    handler = logs.handler("json", stream)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@pytest.mark.parametrize("path", ["fastapi", "fast"])
async def test_request_id_follows_the_request_into_its_task(app_client, json_log, path):
    c = app_client.client
    if path == "fastapi":
        app_client.services.key_cache.clear()
    else:  # a read first, so the key is cached and the fast path answers the create
        await c.get("/v1/videos/warm", headers=app_client.headers())
    rid = f"create-{path}-1"
    r = await c.post("/v1/videos", json=BODY, headers={**app_client.headers(),
                                                       "X-Request-Id": rid})
    assert r.status_code == 200 and r.headers["x-request-id"] == rid
    task_id = r.json()["id"]
    task = await app_client.services.db.get_task(task_id)
    assert task.params["request_id"] == rid

    async def done() -> bool:
        r = await c.get(f"/v1/videos/{task_id}", headers=app_client.headers())
        return r.json()["status"] == "completed"

    await await_for(done, timeout=120, interval=0.2, what="the render")

    def lines_of_task() -> list[dict]:
        return [e for e in json_log() if task_id in e["message"]
                and not e["logger"].startswith("httpx")]  # the test client's own lines

    await await_for(lambda: _completed_logged(lines_of_task), what="the completion log line")
    lines = lines_of_task()
    messages = [e["message"] for e in lines]
    assert any(m.startswith("created task") for m in messages)
    assert any("submitted to sandbox" in m for m in messages)
    assert any(m.startswith(f"task {task_id} completed") for m in messages)
    assert {e.get("request_id") for e in lines} == {rid}, lines
    # the request's own line comes from the request, the others from the engine
    loggers = {e["logger"] for e in lines}
    assert {"vidgate.tasks", "vidgate.engine"} <= loggers


async def _completed_logged(lines) -> bool:
    return any(" completed on " in e["message"] for e in lines())


def test_text_log_lines_carry_the_request_id():
    from vidgate.observability import requestids

    stream = io.StringIO()
    logger = logging.getLogger("vidgate.test_text_log")
    logger.propagate = False
    logger.addHandler(logs.handler("text", stream))
    logger.setLevel(logging.INFO)
    token = requestids.request_id.set("rid-7")
    try:
        logger.info("hello")
    finally:
        requestids.request_id.reset(token)
    logger.info("outside")
    first, second = stream.getvalue().splitlines()
    assert "[rid-7] hello" in first and "[-] outside" in second


# ---- readiness ---------------------------------------------------------------------------

class Proxy:
    """A TCP relay on 127.0.0.1 that can be stopped (every connection cut) and started again
    on the same port: an honest unreachable PostgreSQL."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.server.close()
        for w in list(self.writers):
            w.transport.abort()
        await self.server.wait_closed()

    async def _relay(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}

        async def pipe(src, dst) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_readyz_names_an_unreachable_database_and_recovers(settings, tmp_path):
    from sqlalchemy.engine import make_url

    proxy = None
    if TEST_DB == "postgresql":
        url = make_url(settings.database_url)
        proxy = Proxy((url.host, url.port or 5432))
        await proxy.start()
        settings = dataclasses.replace(settings, database_url=url.set(
            host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    app = create_app(settings)
    async with app.lifespan():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            ok = await c.get("/readyz")
            assert ok.status_code == 200 and ok.json() == {"ready": True}
            assert (await c.get("/healthz")).status_code == 200
            if proxy is not None:
                await proxy.stop()
            else:
                db_file = Path(make_url(settings.database_url).database)
                moved = tmp_path / "elsewhere.db"
                os.rename(db_file, moved)
            try:
                down = await c.get("/readyz")
                assert down.status_code == 503
                assert list(down.json()["failed"]) == ["database"], down.json()
                assert down.json()["ready"] is False
                # alive is not ready: /healthz does no I/O
                assert (await c.get("/healthz")).status_code == 200
            finally:
                if proxy is not None:
                    await proxy.start()
                else:
                    os.rename(moved, db_file)

            async def ready() -> bool:
                return (await c.get("/readyz")).status_code == 200

            await await_for(ready, timeout=15, what="/readyz to recover")


async def test_readyz_names_a_stalled_engine_and_a_stale_schema(app_client):
    services = app_client.services
    c = app_client.client
    readiness = services.readiness
    readiness.loop_age = lambda: 999.0
    r = await c.get("/readyz")
    assert r.status_code == 503 and list(r.json()["failed"]) == ["engine"]
    readiness.loop_age = services.engine.loop_age
    readiness._head = "9999_future"
    r = await c.get("/readyz")
    assert r.status_code == 503 and list(r.json()["failed"]) == ["schema"]
