"""Webhooks: OpenAI-shaped events, Standard Webhooks signatures, a durable outbox."""

from __future__ import annotations

import json

import openai
import sqlalchemy as sa

from helpers_async import create, wait_completed
from support import await_for, free_port
from vidgate.catalog import RawVideoRequest
from vidgate.store.schema import webhook_outbox
from webhook_receiver import Receiver


def _verify(secret: str, headers: dict, body: bytes):
    client = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")
    return client.webhooks.unwrap(body, headers, secret=secret)


async def test_completed_and_failed_events_verify_with_the_openai_sdk(app_client):
    receiver = Receiver()
    try:
        key, secret = await app_client.services.db.create_key("hooked",
                                                              webhook_url=receiver.url)
        assert key.webhook_secret.startswith("whsec_")
        done = await create(app_client, key=secret)
        await wait_completed(app_client, done["id"], key=secret)
        cancelled = await create(app_client, key=secret, seconds="20", size="1920x1080")
        await app_client.client.delete(f"/v1/videos/{cancelled['id']}",
                                       headers=app_client.headers(secret))

        await await_for(lambda: _count(receiver, 2), timeout=60, what="two deliveries")
        events = {}
        for headers, body in receiver.received:
            event = _verify(key.webhook_secret, headers, body)
            assert headers["webhook-id"] == event.id and event.id.startswith("evt_")
            events[event.type] = event
            payload = json.loads(body)
            assert set(payload) == {"id", "object", "created_at", "type", "data"}
            assert payload["object"] == "event"
        assert events["video.completed"].data.id == done["id"]
        assert events["video.failed"].data.id == cancelled["id"]
        # a tampered body is rejected by the same verification
        headers, body = receiver.received[0]
        try:
            _verify(key.webhook_secret, headers, body.replace(b"video", b"vidoe"))
        except openai.InvalidWebhookSignatureError:
            pass
        else:
            raise AssertionError("tampered webhook verified")
    finally:
        receiver.close()


async def _count(receiver, n):
    return len(receiver.received) >= n


async def test_receiver_down_for_a_while_gets_every_event_once(app_client):
    app_client.services.webhooks.backoff = 0.2
    port = free_port()  # nothing listens here yet
    url = f"http://127.0.0.1:{port}/hook"
    key, secret = await app_client.services.db.create_key("later", webhook_url=url)
    ids = [(await create(app_client, key=secret, prompt=f"e{i}"))["id"] for i in range(3)]
    for task_id in ids:
        await wait_completed(app_client, task_id, key=secret)

    async def all_attempted_and_failed():
        rows = await _outbox(app_client)
        return len(rows) == 3 and all(r.attempts >= 2 and r.delivered_at is None
                                      for r in rows)

    await await_for(all_attempted_and_failed, timeout=60, what="failed delivery attempts")
    receiver = Receiver(port=port)
    try:
        await await_for(lambda: _count(receiver, 3), timeout=60, what="late deliveries")

        async def all_delivered():
            return all(r.delivered_at is not None for r in await _outbox(app_client))

        await await_for(all_delivered, timeout=30, what="outbox to be drained")
        got = [_verify(key.webhook_secret, h, b) for h, b in receiver.received]
        assert sorted(e.data.id for e in got) == sorted(ids)
        assert len({e.id for e in got}) == 3  # once each
    finally:
        receiver.close()


async def test_hanging_endpoint_does_not_delay_others(app_client):
    # far longer than two renders take on a loaded machine: the hang must outlast the test
    app_client.services.webhooks.timeout = 600
    hanging = Receiver(hang=True)
    good = Receiver()
    try:
        _, slow_secret = await app_client.services.db.create_key("slow",
                                                                 webhook_url=hanging.url)
        _, fast_secret = await app_client.services.db.create_key("fast", webhook_url=good.url)
        slow = await create(app_client, key=slow_secret, prompt="slow")
        await wait_completed(app_client, slow["id"], key=slow_secret)
        fast = await create(app_client, key=fast_secret, prompt="fast")
        await wait_completed(app_client, fast["id"], key=fast_secret)
        await await_for(lambda: _count(good, 1), timeout=30, what="the good delivery")

        async def fast_recorded():
            # the receiver counts the POST before the sender reads the answer and records it
            rows = {r.task_id: r for r in await _outbox(app_client)}
            return rows[fast["id"]].delivered_at is not None

        await await_for(fast_recorded, timeout=30, what="the good delivery to be recorded")
        rows = {r.task_id: r for r in await _outbox(app_client)}
        # the hanging delivery is still in its first attempt while the other one is done
        assert rows[slow["id"]].delivered_at is None and rows[slow["id"]].attempts == 0
    finally:
        hanging.close()
        good.close()


async def _outbox(app_client):
    async with app_client.services.db.engine.connect() as conn:
        return (await conn.execute(sa.select(webhook_outbox))).all()


async def test_undelivered_event_survives_a_restart(settings):
    from vidgate.app import create_app

    settings.webhook_backoff_seconds = 0.2
    port = free_port()
    app = create_app(settings)
    async with app.lifespan():
        services = app.services
        key, _ = await services.db.create_key("restart", webhook_url=f"http://127.0.0.1:{port}/")
        task = await services.tasks.create(
            key.id, RawVideoRequest(
                prompt="durable", size="720x720"), family="videos")

        async def failed_once():
            async with services.db.engine.connect() as conn:
                row = (await conn.execute(sa.select(webhook_outbox))).first()
            return row is not None and row.attempts >= 1

        await await_for(failed_once, timeout=60, what="a failed first delivery")
    # the process is gone; the event is still in the outbox
    receiver = Receiver(port=port)
    try:
        app = create_app(settings)
        async with app.lifespan():
            await await_for(lambda: _count(receiver, 1), timeout=30, what="redelivery")
        (headers, body), = receiver.received
        assert _verify(key.webhook_secret, headers, body).data.id == task.id
    finally:
        receiver.close()
