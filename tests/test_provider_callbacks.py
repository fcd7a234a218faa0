"""Provider callbacks end to end: vidgate served on a loopback port with VIDGATE_PUBLIC_URL
set, the Replicate and fal fakes calling back the per-task URL they were given (signed as
the real providers sign), and every kind of forged callback refused without a change."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fakes.fal import FakeFal
from fakes.gateway import FAST, Gateway, gateway
from fakes.provider_fixtures import clips_fixture, finish, servers_fixture
from fakes.replicate import FakeReplicate, sign_webhook
from fakes.serving import free_port
from support import await_for
from vidgate.channels import ChannelConfig
from vidgate.domain import Task
from vidgate.signing import callback_signature
from vidgate.store.leases import CALLED_BACK

clips = clips_fixture
servers = servers_fixture

KEY = "cb_test_key"
SLOW = 600.0  # the fallback poll: far beyond any test's patience


@pytest.fixture
def rep(servers, clips):
    thread, cdn = servers
    fake = FakeReplicate(key=KEY, cdn=cdn, clips=clips)
    fake.origin = thread.serve(fake.app())
    return fake


@pytest.fixture
def fal(servers, clips):
    thread, cdn = servers
    fake = FakeFal(key=KEY, cdn=cdn, clips=clips)
    fake.origin = thread.serve(fake.app())
    return fake


def replicate_channel(fake: FakeReplicate, **overrides) -> ChannelConfig:
    os.environ["VG_TEST_CB_REPLICATE"] = KEY
    return ChannelConfig(**{
        "name": "rep", "kind": "replicate", "base_url": fake.url,
        "api_key_env": "VG_TEST_CB_REPLICATE", "models": {"sora-2": "google/veo-3"},
        **FAST, "callback_poll_seconds": SLOW, **overrides})


def fal_channel(fake: FakeFal, **overrides) -> ChannelConfig:
    os.environ["VG_TEST_CB_FAL"] = KEY
    return ChannelConfig(**{
        "name": "falq", "kind": "fal", "base_url": fake.url, "api_key_env": "VG_TEST_CB_FAL",
        "models": {"sora-2": "fal-ai/veo3"}, "jwks_url": fake.jwks_url,
        **FAST, "callback_poll_seconds": SLOW, **overrides})


@contextlib.asynccontextmanager
async def served(tmp_path, database_url, channels, **settings) -> AsyncIterator[Gateway]:
    """vidgate with its engine, also listening on a loopback port that is its public URL,
    so a fake upstream can call it back over real HTTP."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    async with gateway(tmp_path, database_url, channels, public_url=public, **settings) as gw:
        server = uvicorn.Server(uvicorn.Config(gw.app, host="127.0.0.1", port=port,
                                               log_level="critical", lifespan="off"))
        serving = asyncio.create_task(server.serve())

        async def started() -> bool:
            return server.started

        await await_for(started, timeout=15, what="vidgate to listen")
        gw.public_url = public  # type: ignore[attr-defined]
        try:
            yield gw
        finally:
            server.should_exit = True
            await serving


def polls_before(fake, prefix: str, moment: float) -> int:
    """GETs of a job's status the fake answered before `moment` (monotonic)."""
    return sum(1 for at, method, path in fake.calls
               if method == "GET" and path.startswith(prefix) and at < moment)


async def test_replicate_calls_back_and_the_task_completes_without_a_poll(
        tmp_path, database_url, rep):
    async with served(tmp_path, database_url, [replicate_channel(rep)]) as gw:
        video = await gw.create(prompt="a lighthouse", size="1280x720", seconds="8")
        started = time.monotonic()
        done = await finish(gw, video["id"], timeout=30)
        took = time.monotonic() - started
        task = (await gw.rows())[video["id"]]
    assert done["status"] == "completed"
    assert took < SLOW / 10  # the fallback poll would have come after 600 s
    [prediction] = rep.predictions.values()
    url = urlsplit(prediction.webhook)
    assert f"{url.scheme}://{url.netloc}" == gw.public_url
    assert url.path == f"/callbacks/rep/{video['id']}"
    assert parse_qs(url.query)["sig"] == [callback_signature(b"test-secret", "rep", video["id"])]
    assert task.upstream_id not in prediction.webhook
    assert prediction.events == ["completed"]
    [delivery] = rep.deliveries.sent
    assert delivery.status == 200
    # nothing polled the prediction before the callback; one look after it, to finish
    assert polls_before(rep, "/v1/predictions/", delivery.at) == 0
    # no secret in the channel: vidgate fetched Replicate's, once, with the key
    fetched = [r for r in rep.recorder.requests if r.path == "/v1/webhooks/default/secret"]
    assert len(fetched) == 1 and fetched[0].authorization == f"Bearer {KEY}"


async def test_a_failed_poll_after_the_callback_is_retried_at_the_usual_pace(
        tmp_path, database_url, rep):
    """The callback is spent once it made the task due: a poll that then fails is retried
    at the channel's own pace, not the slow fallback's."""
    rep.faults.rates["poll"] = 1.0
    rep.faults.kinds["poll"] = ("503",)
    async with served(tmp_path, database_url, [replicate_channel(rep)]) as gw:
        video = await gw.create(prompt="a pier", size="1280x720", seconds="8")

        async def refused_once() -> bool:
            return rep.faults.injected[("poll", "503")] >= 1

        await await_for(refused_once, timeout=30, what="the poll the callback caused")
        rep.faults.off()
        done = await finish(gw, video["id"], timeout=30)  # the fallback would take 600 s
    assert done["status"] == "completed"
    assert rep.deliveries.statuses() == [200]


async def test_fal_calls_back_and_outcomes_keep_their_codes(tmp_path, database_url, fal):
    async with served(tmp_path, database_url, [fal_channel(fal)]) as gw:
        ok = await gw.create(prompt="a glacier", size="1280x720", seconds="8")
        refused = await gw.create(prompt="a glacier [moderation]", size="1280x720",
                                  seconds="8")
        started = time.monotonic()
        ok, refused = [await finish(gw, v["id"], timeout=30) for v in (ok, refused)]
        took = time.monotonic() - started
    assert ok["status"] == "completed"
    assert refused["error"]["code"] == "moderation_blocked"
    assert took < SLOW / 10
    hooks = {r.webhook for r in fal.requests.values()}
    assert hooks == {f"{gw.public_url}/callbacks/falq/{v}?sig="
                     f"{callback_signature(b'test-secret', 'falq', v)}"
                     for v in (ok["id"], refused["id"])}
    assert fal.deliveries.statuses() == [200, 200]
    first = min(d.at for d in fal.deliveries.sent)
    assert polls_before(fal, "/fal-ai/veo3/requests/", first) == 0
    # the keys came from the channel's jwks_url, without the key
    jwks = [r for r in fal.recorder.requests if r.path == "/.well-known/jwks.json"]
    assert jwks and {r.authorization for r in jwks} == {None}


async def test_no_callback_url_without_a_public_url(tmp_path, database_url, rep, fal):
    # the slow fallback pace stays configured: without callbacks it must not apply
    channels = [replicate_channel(rep), fal_channel(fal, models={"sora-2-pro": "fal-ai/veo3"})]
    async with gateway(tmp_path, database_url, channels) as gw:
        a = await gw.create(prompt="one", size="1280x720", seconds="8")
        b = await gw.create(model="sora-2-pro", prompt="two", size="1280x720", seconds="8")
        for video in (a, b):
            assert (await finish(gw, video["id"], timeout=60))["status"] == "completed"
    [prediction] = rep.predictions.values()
    [request] = fal.requests.values()
    assert prediction.webhook is None and request.webhook is None
    assert rep.deliveries.sent == [] and fal.deliveries.sent == []
    # found by polling, at the channel's own pace: both finished within `finish`'s 60 s,
    # where the 600 s callback fallback would not have looked yet
    assert polls_before(rep, "/v1/predictions/", time.monotonic()) >= 1


async def settled(gw: Gateway, task_id: str) -> None:
    """Until the task is bound upstream and handed back to wait for its (slow) next poll."""
    async def idle() -> bool:
        row = (await gw.rows())[task_id]
        return bool(row.upstream_id) and row.lease_owner is None and bool(row.next_poll_at)

    await await_for(idle, timeout=30, what=f"{task_id} to wait for its next poll")


async def _snapshot(gw: Gateway, task_id: str) -> tuple:
    row = (await gw.rows())[task_id]
    return row.status, row.progress, row.next_poll_at, row.completed_at


async def test_forged_and_replayed_callbacks_change_nothing(tmp_path, database_url, rep):
    rep.callbacks_on = False  # the fake never calls: every callback here is the test's
    os.environ["VG_TEST_CB_SECRET"] = rep.webhook_secret
    channel = replicate_channel(rep, webhook_secret_env="VG_TEST_CB_SECRET")
    async with served(tmp_path, database_url, [channel]) as gw:
        video = await gw.create(prompt="a quiet street", size="1280x720", seconds="8")
        other = await gw.create(prompt="another street", size="1280x720", seconds="8")
        for v in (video, other):
            await settled(gw, v["id"])
        task_id = video["id"]
        row = (await gw.rows())[task_id]

        async def prediction_done() -> bool:
            p = rep.predictions[row.upstream_id]
            return rep.status(p) == "succeeded"

        await await_for(prediction_done, timeout=30, what="the prediction to succeed")
        body = orjson.dumps(rep.render(rep.predictions[row.upstream_id]))
        good_sig = callback_signature(b"test-secret", "rep", task_id)
        url = f"{gw.public_url}/callbacks/rep/{task_id}"

        def signed(msg_id: str, stamp: int, secret: str = rep.webhook_secret,
                   content: bytes = body) -> dict[str, str]:
            return {"webhook-id": msg_id, "webhook-timestamp": str(stamp),
                    "webhook-signature": sign_webhook(secret, msg_id, str(stamp), content)}

        now = int(time.time())
        polls = polls_before(rep, "/v1/predictions/", time.monotonic())
        before = await _snapshot(gw, task_id)
        other_before = await _snapshot(gw, other["id"])
        other_sig = callback_signature(b"test-secret", "rep", other["id"])
        wrong_secret = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB"
        forged = [
            (url + "?sig=" + "0" * 64, signed("msg_1", now), body, 403),
            (url, signed("msg_2", now), body, 403),  # no signature at all
            (url + "?sig=" + other_sig, signed("msg_3", now), body, 403),  # another task's
            (f"{gw.public_url}/callbacks/nope/{task_id}?sig={good_sig}", signed("msg_4", now),
             body, 403),
            (url + "?sig=" + good_sig, signed("msg_5", now, wrong_secret), body, 401),
            (url + "?sig=" + good_sig, signed("msg_6", now - 400), body, 401),  # stale
            (url + "?sig=" + good_sig, signed("msg_7", now + 400), body, 401),  # future
            (url + "?sig=" + good_sig, signed("msg_8", now), body + b" ", 401),  # tampered
            (url + "?sig=" + good_sig, {}, body, 401),  # no provider headers
        ]
        async with httpx.AsyncClient(timeout=10) as client:
            for target, headers, content, status in forged:
                r = await client.post(target, content=content, headers=headers)
                assert r.status_code == status, (target, headers, r.text)
                assert r.json()["error"]["message"]
            assert await _snapshot(gw, task_id) == before
            assert polls_before(rep, "/v1/predictions/", time.monotonic()) == polls

            genuine = signed("msg_ok", now)
            r = await client.post(url + "?sig=" + good_sig, content=body, headers=genuine)
            assert r.status_code == 200 and r.json()["task_due"] is True
            assert (await finish(gw, task_id, timeout=30))["status"] == "completed"
            after = await _snapshot(gw, task_id)
            replay = await client.post(url + "?sig=" + good_sig, content=body, headers=genuine)
            assert replay.status_code == 409
            assert await _snapshot(gw, task_id) == after
        # the other task was never touched by any of it
        assert await _snapshot(gw, other["id"]) == other_before


async def test_forged_fal_callbacks_are_refused(tmp_path, database_url, fal):
    fal.callbacks_on = False
    async with served(tmp_path, database_url, [fal_channel(fal)]) as gw:
        video = await gw.create(prompt="dunes", size="1280x720", seconds="8")
        await settled(gw, video["id"])
        task_id = video["id"]
        request_id = (await gw.rows())[task_id].upstream_id.rsplit("/", 1)[-1]

        async def request_done() -> bool:  # a genuine callback comes only once it ended
            return fal.state(fal.requests[request_id]) == "COMPLETED"

        await await_for(request_done, timeout=30, what="the fal request to complete")
        body = orjson.dumps({"request_id": request_id, "gateway_request_id": request_id,
                             "status": "OK", "payload": {"video": {"url": fal.origin}}})
        url = (f"{gw.public_url}/callbacks/falq/{task_id}?sig="
               f"{callback_signature(b'test-secret', 'falq', task_id)}")
        genuine = fal.sign(request_id, body)
        fal_key, fal.signing_key = fal.signing_key, Ed25519PrivateKey.generate()
        by_stranger = fal.sign(request_id, body)
        fal.signing_key = fal_key
        before = await _snapshot(gw, task_id)
        cases = [
            (by_stranger, body),                                      # not fal's key
            (fal.sign(request_id, body, timestamp=int(time.time()) - 400), body),  # stale
            (genuine, body.replace(b'"OK"', b'"ERROR"')),            # tampered body
            ({**genuine, "x-fal-webhook-signature": "zz"}, body),    # not hex
            ({k: v for k, v in genuine.items() if "user" not in k}, body),  # header missing
        ]
        async with httpx.AsyncClient(timeout=10) as client:
            for headers, content in cases:
                r = await client.post(url, content=content, headers=headers)
                assert r.status_code == 401, r.text
            assert await _snapshot(gw, task_id) == before
            r = await client.post(url, content=body, headers=genuine)
            assert r.status_code == 200
            again = await client.post(url, content=body, headers=genuine)
            assert again.status_code == 409
        assert (await finish(gw, task_id, timeout=30))["status"] == "completed"


async def test_a_callback_during_a_step_is_kept_by_the_hand_back(tmp_path, database_url):
    """make_due on a leased task survives the step's later hand-back (release_many), and
    only the channel the task is bound to can make it due."""
    async with gateway(tmp_path, database_url, [], run_engine=False) as gw:
        video = await gw.create(prompt="x", size="720x1280", seconds="4")
        leases = gw.db.leases

        def hand_back(at: float, claimed: Task) -> dict:
            return {video["id"]: {"next_poll_at": at, "status": "queued", "progress": 0,
                                  "status_updated_at": int(at),
                                  "claimed_next_poll_at": claimed.next_poll_at}}

        now = time.time()
        [claimed] = await leases.claim_due("w1", now, now + 30, 10)
        assert claimed.id == video["id"]
        assert await leases.update_leased(video["id"], "w1", backend="sandbox",
                                          upstream_id="up_1")
        assert not await leases.make_due(video["id"], "elsewhere")
        poked = time.time()
        assert await leases.make_due(video["id"], "sandbox")
        await leases.release_many("w1", hand_back(poked + 500, claimed))
        row = (await gw.rows())[video["id"]]
        assert row.next_poll_at == CALLED_BACK and row.lease_owner is None
        # without a poke, the hand-back's own time stands
        [again] = await leases.claim_due("w1", time.time(), time.time() + 30, 10)
        await leases.release_many("w1", hand_back(poked + 500, again))
        assert (await gw.rows())[video["id"]].next_poll_at == pytest.approx(poked + 500)


def test_the_fakes_sign_as_the_providers_sdks_check():
    """The Replicate fake's signature passes the replicate SDK's own validator and vidgate's
    check; vidgate refuses what the SDK refuses."""
    from replicate.webhook import InvalidSignatureError, Webhooks, WebhookSigningSecret

    from vidgate.backends.base import CallbackRefused
    from vidgate.backends.http.signatures import standard_webhook

    secret = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"
    body = b'{"id": "p1", "status": "succeeded"}'
    stamp = str(int(time.time()))
    headers = {"webhook-id": "msg_1", "webhook-timestamp": stamp,
               "webhook-signature": sign_webhook(secret, "msg_1", stamp, body)}
    Webhooks.validate(headers=headers, body=body.decode(), secret=WebhookSigningSecret(
        key=secret), tolerance=300)
    assert standard_webhook(secret, headers, body, time.time()) == "msg_1"
    bad = {**headers, "webhook-id": "msg_2"}
    with pytest.raises(InvalidSignatureError):
        Webhooks.validate(headers=bad, body=body.decode(),
                          secret=WebhookSigningSecret(key=secret))
    with pytest.raises(CallbackRefused):
        standard_webhook(secret, bad, body, time.time())


async def test_the_callback_route_is_not_in_the_client_api_schema(tmp_path, database_url):
    async with gateway(tmp_path, database_url, [], run_engine=False) as gw:
        schema = (await gw.client.get("/openapi.json")).json()
        assert not [p for p in schema["paths"] if p.startswith("/callbacks")]
        # a sandbox channel takes no callbacks, whatever the URL says
        sig = callback_signature(b"test-secret", "sandbox", "video_x")
        r = await gw.client.post(f"/callbacks/sandbox/video_x?sig={sig}", content=b"{}")
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


async def test_a_called_back_task_is_claimed_before_overdue_routine_polls(
        tmp_path, database_url):
    """When the engine is behind, a task a provider called back does not queue behind the
    overdue fallback polls of every other task."""
    async with gateway(tmp_path, database_url, [], run_engine=False) as gw:
        ids = [(await gw.create(prompt=f"t{i}", size="720x1280", seconds="4"))["id"]
               for i in range(3)]
        leases = gw.db.leases
        now = time.time()
        claimed = await leases.claim_due("w1", now, now + 30, 10)
        assert {t.id for t in claimed} == set(ids)
        for task_id in ids:
            assert await leases.update_leased(task_id, "w1", backend="sandbox",
                                              upstream_id="up_" + task_id)
        # all three overdue by a minute; the last one is then called back
        await leases.release_many("w1", {task.id: {
            "next_poll_at": now - 60 + i, "status": "queued", "progress": 0,
            "status_updated_at": int(now), "claimed_next_poll_at": task.next_poll_at}
            for i, task in enumerate(sorted(claimed, key=lambda t: ids.index(t.id)))})
        assert await leases.make_due(ids[2], "sandbox")
        [first] = await leases.claim_due("w2", time.time(), time.time() + 30, 1)
        assert first.id == ids[2]


async def test_kling_pushes_the_task_and_it_completes_without_a_poll(
        tmp_path, database_url, tmp_path_factory):
    """Kling POSTs the ended task to `callback_url`; it signs nothing, so vidgate's signed
    per-task URL is what lets it in, and the engine finishes the task at once."""
    from fakes.kling import ACCESS as KLING_ACCESS
    from fakes.kling import SECRET as KLING_SECRET
    from fakes.kling import KlingWorld, kling_channel
    from fakes.sized import SizedVideos

    world = KlingWorld(SizedVideos(tmp_path_factory.mktemp("kling-cb")), KLING_ACCESS,
                       KLING_SECRET)
    try:
        fake = world.add()
        channel = kling_channel(fake, callback_poll_seconds=SLOW)
        async with served(tmp_path, database_url, [channel]) as gw:
            video = await gw.create(prompt="a kite", size="1280x720", seconds="5")
            started = time.monotonic()
            done = await finish(gw, video["id"], timeout=30)
            took = time.monotonic() - started
            sent = fake.creates[0]["callback_url"]
            # a push to another task's URL (its signature no longer matches) is refused
            forged = sent.replace(video["id"], "video_" + "0" * 32)
            async with httpx.AsyncClient() as client:
                assert (await client.post(forged, content=b"{}")).status_code == 403
        assert done["status"] == "completed", done
        assert took < SLOW / 10  # the fallback poll would have come after 600 s
        assert urlsplit(sent).path == f"/callbacks/kling/{video['id']}"
        assert parse_qs(urlsplit(sent).query)["sig"] == [
            callback_signature(b"test-secret", "kling", video["id"])]
        assert fake.deliveries.statuses() == [200]
    finally:
        world.close()
