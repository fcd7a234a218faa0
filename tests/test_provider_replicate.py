"""The `replicate` kind end to end: vidgate (engine running) -> a fake Replicate API -> a fake
CDN, and Replicate's own Python client against the same fake."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from fakes.faults import TRANSIENT
from fakes.gateway import FAST, gateway
from fakes.provider_fixtures import clips_fixture
from fakes.provider_fixtures import finish as finished
from fakes.provider_fixtures import stored_info as stored
from fakes.replicate import FakeReplicate, version_of
from fakes.serving import ServerThread
from fakes.upstream import FileHost
from support import await_for
from vidgate.backends.replicate import read_prediction, read_progress
from vidgate.channels import ChannelConfig

KEY = "r8_test_key"
VEO = {"models": {"sora-2": "google/veo-3"}}
KLING = {"models": {"sora-2": "kwaivgi/kling-v2.1-master"},
         "sizes": ["1920x1080", "1080x1920", "1080x1080"], "seconds": [5, 10]}

clips = clips_fixture  # shared with every provider's tests


@pytest.fixture
def rep(clips):
    thread = ServerThread()
    cdn = FileHost()
    cdn.url = thread.serve(cdn.app())  # a second origin on 127.0.0.1: replicate.delivery
    fake = FakeReplicate(key=KEY, cdn=cdn, clips=clips)
    fake.origin = thread.serve(fake.app())
    yield fake
    thread.stop()


def channel(fake: FakeReplicate, **overrides) -> ChannelConfig:
    os.environ["VG_TEST_REPLICATE_KEY"] = KEY
    fields = {"name": "replicate", "kind": "replicate", "base_url": fake.url,
              "api_key_env": "VG_TEST_REPLICATE_KEY", **VEO, **FAST, **overrides}
    return ChannelConfig(**fields)


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (20, 140, 90)).save(buf, format="PNG")
    return buf.getvalue()


async def create_with_image(gw, image: bytes, **fields) -> dict:
    r = await gw.client.post("/v1/videos", headers=gw.headers(), data=fields,
                             files={"input_reference": ("ref.png", image, "image/png")})
    assert r.status_code == 200, r.text
    return r.json()


async def test_text_and_image_to_video_on_an_official_model(tmp_path, database_url, rep):
    async with gateway(tmp_path, database_url, [channel(rep)]) as gw:
        text = await gw.create(prompt="a harbour at night", size="1920x1080", seconds="8")
        image = await create_with_image(gw, png(500, 500), prompt="the harbour wakes",
                                        size="720x1280", seconds="8")
        for video in (text, image):
            assert (await finished(gw, video["id"]))["status"] == "completed"
        wide = await stored(gw, text["id"], tmp_path)
        tall = await stored(gw, image["id"], tmp_path)
    assert (wide.width, wide.height, round(wide.duration)) == (1920, 1080, 8)
    assert (tall.width, tall.height, round(tall.duration)) == (720, 1280, 8)
    by_prompt = {p.input["prompt"]: p for p in rep.predictions.values()}
    t2v, i2v = by_prompt["a harbour at night"], by_prompt["the harbour wakes"]
    assert t2v.model == i2v.model == "google/veo-3"
    assert {k: t2v.input[k] for k in ("duration", "aspect_ratio", "resolution")} == {
        "duration": 8, "aspect_ratio": "16:9", "resolution": "1080p"}
    assert (i2v.input["aspect_ratio"], i2v.input["resolution"]) == ("9:16", "720p")
    assert i2v.input["image"].startswith("data:image/png;base64,")
    assert "image" not in t2v.input
    # official models go to /models/{owner}/{name}/predictions; the key never leaves the API
    assert sum(r.path == "/v1/models/google/veo-3/predictions"
               for r in rep.recorder.requests) == 2
    assert rep.recorder.authorizations() == {f"Bearer {KEY}"}
    assert len(rep.cdn.recorder.requests) == 2
    assert rep.cdn.recorder.authorizations() == {None}


async def test_kling_takes_start_image_and_a_pinned_version_goes_to_predictions(
        tmp_path, database_url, rep):
    version = version_of("acme/wan-custom")
    channels = [channel(rep, **KLING),
                channel(rep, name="pinned", models={"sora-2-pro": f"acme/wan-custom:{version}"},
                        sizes=["1280x720"], seconds=[5])]
    async with gateway(tmp_path, database_url, channels) as gw:
        kling = await create_with_image(gw, png(300, 600), prompt="kling", size="1920x1080",
                                        seconds="5")
        pinned = await gw.create(model="sora-2-pro", prompt="[list] pinned", size="1280x720",
                                 seconds="5")
        for video in (kling, pinned):
            assert (await finished(gw, video["id"]))["status"] == "completed"
        wide = await stored(gw, kling["id"], tmp_path)
        small = await stored(gw, pinned["id"], tmp_path)
    # the portrait picture was cropped to 16:9, so Kling renders the frame that was asked for
    assert (wide.width, wide.height, round(wide.duration)) == (1920, 1080, 5)
    assert (small.width, small.height, round(small.duration)) == (1280, 720, 5)
    by_model = {p.model: p for p in rep.predictions.values()}
    k = by_model["kwaivgi/kling-v2.1-master"].input
    assert k["duration"] == 5 and k["start_image"].startswith("data:image/png;base64,")
    assert "aspect_ratio" not in k and "resolution" not in k and "image" not in k
    assert by_model["acme/wan-custom"].version == version
    assert any(r.method == "POST" and r.path == "/v1/predictions"
               for r in rep.recorder.requests)


async def test_failure_and_refusal_map_to_their_codes(tmp_path, database_url, rep):
    async with gateway(tmp_path, database_url, [channel(rep)]) as gw:
        failed = await gw.create(prompt="x [fail]", size="1280x720", seconds="8")
        refused = await gw.create(prompt="x [moderation]", size="1280x720", seconds="8")
        failed, refused = [await finished(gw, v["id"]) for v in (failed, refused)]
    assert failed["error"]["code"] == "upstream_error"
    assert refused["error"]["code"] == "moderation_blocked"
    assert "sensitive" in refused["error"]["message"]


async def test_a_rejected_input_fails_at_submit_without_retrying(tmp_path, database_url, rep):
    async with gateway(tmp_path, database_url, [channel(rep, extra_fields={"prompt": ""})]) \
            as gw:
        # the client's prompt always wins over a channel default, so the input is valid
        ok = await gw.create(prompt="valid", size="1280x720", seconds="8")
        assert (await finished(gw, ok["id"]))["status"] == "completed"
    unknown = version_of("acme/unknown")
    channels = [channel(rep, models={"sora-2": f"acme/unknown:{unknown}"})]
    async with gateway(tmp_path, database_url, channels) as gw:
        video = await gw.create(prompt="no such version", size="1280x720", seconds="8")
        result = await finished(gw, video["id"])
    assert result["error"]["code"] == "upstream_error"
    assert "version" in result["error"]["message"].lower()
    assert sum(r.path == "/v1/predictions" for r in rep.recorder.requests) == 1


async def test_transient_faults_never_fail_a_task(tmp_path, database_url, rep):
    rep.faults.everywhere(0.3, TRANSIENT)
    async with gateway(tmp_path, database_url, [channel(rep)]) as gw:
        ids = [(await gw.create(prompt=f"storm {i}", size="1280x720", seconds="8"))["id"]
               for i in range(4)]
        results = [await finished(gw, i) for i in ids]
    assert {r["status"] for r in results} == {"completed"}, results
    assert rep.faults.injected


async def test_retry_after_is_honoured_while_polling(tmp_path, database_url, rep):
    rep.faults.rates["poll"] = 1.0
    rep.faults.kinds["poll"] = ("429",)
    rep.faults.retry_after = 1
    async with gateway(tmp_path, database_url, [channel(rep)]) as gw:
        video = await gw.create(prompt="patience", size="1280x720", seconds="8")

        def polls() -> list[float]:
            return [t for t, method, _ in rep.calls if method == "GET"]

        async def three_polls() -> bool:
            return len(polls()) >= 3

        await await_for(three_polls, timeout=30, what="three refused polls")
        rep.faults.off()
        assert (await finished(gw, video["id"]))["status"] == "completed"
    times = polls()[:3]
    assert all(b - a >= 0.9 for a, b in zip(times, times[1:], strict=False)), times


async def test_cancel_reaches_replicate(tmp_path, database_url, rep):
    async with gateway(tmp_path, database_url, [channel(rep)]) as gw:
        video = await gw.create(prompt="forever [stuck]", size="1280x720", seconds="8")

        async def running() -> bool:
            return (await gw.get(video["id"]))["progress"] >= 50

        await await_for(running, timeout=30, what="progress from the logs")
        r = await gw.client.delete(f"/v1/videos/{video['id']}", headers=gw.headers())
        assert r.status_code == 200, r.text

        async def cancelled() -> bool:
            return bool(rep.cancels)

        await await_for(cancelled, timeout=30, what="the cancel to reach Replicate")
    (p,) = rep.predictions.values()
    assert rep.cancels == [p.id]
    assert any(r.method == "POST" and r.path == f"/v1/predictions/{p.id}/cancel"
               for r in rep.recorder.requests)


def test_prediction_shapes():
    assert read_prediction({"status": "starting"}).state == "queued"
    running = read_prediction({"status": "processing",
                               "logs": "load\n 10%|#   | 10/100\n 42%|####  | 42/100"})
    assert (running.state, running.progress) == ("in_progress", 42)
    assert read_prediction({"status": "processing", "logs": "warming up"}).progress is None
    assert read_prediction({"status": "new_state"}).state == "unknown"
    assert read_prediction(["not", "an", "object"]).state == "unknown"
    done = read_prediction({"status": "succeeded", "output": ["https://replicate.delivery/x.mp4"]})
    assert done.result_url == "https://replicate.delivery/x.mp4"
    nsfw = read_prediction({"status": "failed", "error": "NSFW content detected."})
    assert nsfw.error_code == "moderation_blocked"
    canceled = read_prediction({"status": "canceled"})
    assert (canceled.state, canceled.error_code) == ("failed", "upstream_error")
    assert read_progress(None) is None


def test_replicate_client_drives_the_fake(rep):
    import replicate

    client = replicate.Client(api_token=KEY, base_url=rep.origin)
    client.poll_interval = 0.05
    p = client.predictions.create(model="google/veo-3", input={
        "prompt": "sdk", "duration": 8, "aspect_ratio": "16:9", "resolution": "720p"})
    assert p.status == "starting"
    p.wait()
    assert p.status == "succeeded" and p.output.startswith(rep.cdn.url)
    assert p.progress is not None and p.progress.percentage == 1.0
    assert client.predictions.get(p.id).output == p.output

    pinned = client.predictions.create(version=version_of("acme/wan-custom"),
                                       input={"prompt": "pinned", "duration": 5})
    pinned.wait()
    assert pinned.model == "acme/wan-custom" and pinned.status == "succeeded"

    refused = client.predictions.create(model="google/veo-3", input={"prompt": "[moderation]"})
    refused.wait()
    assert refused.status == "failed" and "sensitive" in refused.error

    stuck = client.predictions.create(model="google/veo-3", input={"prompt": "[stuck]"})
    stuck.cancel()
    assert stuck.status == "canceled" and rep.cancels == [stuck.id]

    with pytest.raises(replicate.exceptions.ReplicateError) as err:
        client.predictions.create(model="google/veo-3", input={})
    assert err.value.status == 422
    assert rep.recorder.authorizations() == {f"Bearer {KEY}"}
