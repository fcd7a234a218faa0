"""The `fal` kind end to end: vidgate (engine running) -> a fake fal queue -> a fake CDN, and
fal's own Python client against the same fake."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from fakes.fal import FakeFal
from fakes.faults import TRANSIENT
from fakes.gateway import FAST, gateway
from fakes.provider_fixtures import clips_fixture
from fakes.provider_fixtures import finish as finished
from fakes.provider_fixtures import stored_info as stored
from fakes.serving import ServerThread
from fakes.upstream import FileHost
from support import await_for
from vidgate.backends.fal import FalBackend, fal_error, read_status
from vidgate.channels import ChannelConfig

KEY = "fal-test-key"
VEO = {"models": {"sora-2": "fal-ai/veo3"},
       "image_to_video_models": {"sora-2": "fal-ai/veo3/image-to-video"}}
KLING = {"models": {"sora-2": "fal-ai/kling-video/v2.1/master/text-to-video"},
         "image_to_video_models": {"sora-2": "fal-ai/kling-video/v2.1/master/image-to-video"},
         "sizes": ["1920x1080", "1080x1920", "1080x1080"], "seconds": [5, 10]}

clips = clips_fixture  # shared with every provider's tests


@pytest.fixture
def fal(clips):
    thread = ServerThread()
    cdn = FileHost()
    cdn.url = thread.serve(cdn.app())  # a second origin on 127.0.0.1: the "CDN"
    fake = FakeFal(key=KEY, cdn=cdn, clips=clips)
    fake.origin = thread.serve(fake.app())
    yield fake
    thread.stop()


def channel(fake: FakeFal, **overrides) -> ChannelConfig:
    os.environ["VG_TEST_FAL_KEY"] = KEY
    fields = {"name": "fal", "kind": "fal", "base_url": fake.url,
              "api_key_env": "VG_TEST_FAL_KEY", **VEO, **FAST, **overrides}
    return ChannelConfig(**fields)


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 90)).save(buf, format="PNG")
    return buf.getvalue()


async def test_text_to_video_maps_size_and_length_and_keeps_the_key_home(
        tmp_path, database_url, fal):
    async with gateway(tmp_path, database_url, [channel(fal)]) as gw:
        video = await gw.create(prompt="a lighthouse at dusk", size="1280x720", seconds="8")
        assert (await finished(gw, video["id"]))["status"] == "completed"
        info = await stored(gw, video["id"], tmp_path)
    assert (info.width, info.height, round(info.duration)) == (1280, 720, 8)
    (sent,) = fal.requests.values()
    assert sent.app == "fal-ai/veo3"
    assert {k: sent.input[k] for k in ("prompt", "duration", "aspect_ratio", "resolution")} == {
        "prompt": "a lighthouse at dusk", "duration": "8s", "aspect_ratio": "16:9",
        "resolution": "720p"}
    assert "image_url" not in sent.input
    # the key went to the queue on every call, and never to the CDN
    assert fal.recorder.authorizations() == {f"Key {KEY}"}
    assert [r.path for r in fal.cdn.recorder.requests] == [f"/files/{sent.id}.mp4"]
    assert fal.cdn.recorder.authorizations() == {None}


async def test_image_to_video_uses_the_image_app_and_the_requested_frame(
        tmp_path, database_url, fal):
    async with gateway(tmp_path, database_url, [channel(fal)]) as gw:
        r = await gw.client.post(
            "/v1/videos", headers=gw.headers(),
            data={"prompt": "the square comes alive", "size": "720x1280", "seconds": "4"},
            files={"input_reference": ("ref.png", png(300, 300), "image/png")})
        assert r.status_code == 200, r.text
        video = r.json()
        assert (await finished(gw, video["id"]))["status"] == "completed"
        info = await stored(gw, video["id"], tmp_path)
    assert (info.width, info.height, round(info.duration)) == (720, 1280, 4)
    (sent,) = fal.requests.values()
    assert sent.app == "fal-ai/veo3/image-to-video"
    assert (sent.input["duration"], sent.input["aspect_ratio"],
            sent.input["resolution"]) == ("4s", "9:16", "720p")
    assert sent.input["image_url"].startswith("data:image/png;base64,")


async def test_kling_apps_get_their_own_spelling_and_a_cropped_image(
        tmp_path, database_url, fal):
    """Kling's image app takes no aspect ratio and renders the image's frame: the square
    reference is cropped to 16:9 first, so the video is the size the client asked for."""
    async with gateway(tmp_path, database_url, [channel(fal, **KLING)]) as gw:
        t2v = await gw.create(prompt="a kite", size="1080x1080", seconds="5")
        r = await gw.client.post(
            "/v1/videos", headers=gw.headers(),
            data={"prompt": "a kite takes off", "size": "1920x1080", "seconds": "5"},
            files={"input_reference": ("ref.png", png(400, 400), "image/png")})
        assert r.status_code == 200, r.text
        i2v = r.json()
        for video in (t2v, i2v):
            assert (await finished(gw, video["id"]))["status"] == "completed"
        square = await stored(gw, t2v["id"], tmp_path)
        wide = await stored(gw, i2v["id"], tmp_path)
    assert (square.width, square.height, round(square.duration)) == (1080, 1080, 5)
    assert (wide.width, wide.height, round(wide.duration)) == (1920, 1080, 5)
    by_app = {r.app: r.input for r in fal.requests.values()}
    text = by_app["fal-ai/kling-video/v2.1/master/text-to-video"]
    image = by_app["fal-ai/kling-video/v2.1/master/image-to-video"]
    assert (text["duration"], text["aspect_ratio"]) == ("5", "1:1")
    assert "resolution" not in text and "aspect_ratio" not in image
    assert image["duration"] == "5"


async def test_failure_and_refusal_map_to_their_codes(tmp_path, database_url, fal):
    async with gateway(tmp_path, database_url, [channel(fal)]) as gw:
        failed = await gw.create(prompt="x [fail]", size="1280x720", seconds="4")
        refused = await gw.create(prompt="x [moderation]", size="1280x720", seconds="4")
        failed, refused = [await finished(gw, v["id"]) for v in (failed, refused)]
    assert failed["status"] == refused["status"] == "failed"
    assert failed["error"]["code"] == "upstream_error"
    assert refused["error"]["code"] == "moderation_blocked"
    assert "http" not in refused["error"]["message"]  # fal's doc URL is not passed on


async def test_transient_faults_never_fail_a_task(tmp_path, database_url, fal):
    fal.faults.everywhere(0.3, TRANSIENT)
    fal.faults.script("submit", ["slow", "garbage"]).script("poll", ["429"])
    async with gateway(tmp_path, database_url, [channel(fal)]) as gw:
        ids = [(await gw.create(prompt=f"weather {i}", size="1280x720", seconds="4"))["id"]
               for i in range(4)]
        results = [await finished(gw, i) for i in ids]
    assert {r["status"] for r in results} == {"completed"}, results
    injected = {kind for (_, kind) in fal.faults.injected}
    assert {"slow", "garbage"} & injected and fal.faults.injected


async def test_retry_after_is_honoured_while_polling(tmp_path, database_url, fal):
    fal.faults.rates["poll"] = 1.0
    fal.faults.kinds["poll"] = ("429",)
    fal.faults.retry_after = 1
    async with gateway(tmp_path, database_url, [channel(fal)]) as gw:
        video = await gw.create(prompt="patience", size="1280x720", seconds="4")

        def polls() -> list[float]:
            return [t for t, method, path in fal.calls if path.endswith("/status")]

        async def three_polls() -> bool:
            return len(polls()) >= 3

        await await_for(three_polls, timeout=30, what="three refused polls")
        fal.faults.off()
        assert (await finished(gw, video["id"]))["status"] == "completed"
    times = polls()[:3]
    # poll_min_seconds is 0.05; only the Retry-After of 1 s keeps the polls this far apart
    assert all(b - a >= 0.9 for a, b in zip(times, times[1:], strict=False)), times


@pytest.mark.parametrize("faults", [[], ["503", "429", "reset"]],
                         ids=["first-try", "after-transient-faults"])
async def test_cancel_reaches_fal(tmp_path, database_url, fal, faults):
    """A cancel answered 5xx/429 or dropped is tried again: a job left running upstream is
    still billed by fal."""
    fal.faults.script("cancel", faults)
    async with gateway(tmp_path, database_url, [channel(fal)]) as gw:
        video = await gw.create(prompt="forever [stuck]", size="1280x720", seconds="4")

        async def running() -> bool:
            return (await gw.get(video["id"]))["status"] == "in_progress"

        await await_for(running, timeout=30, what="the request to run upstream")
        r = await gw.client.delete(f"/v1/videos/{video['id']}", headers=gw.headers())
        assert r.status_code == 200, r.text

        async def cancelled() -> bool:
            return bool(fal.cancels)

        await await_for(cancelled, timeout=30, what="the cancel to reach fal")
    (sent,) = fal.requests.values()
    assert fal.cancels == [sent.id]
    assert sum(n for (call, _), n in fal.faults.injected.items() if call == "cancel") == len(
        faults)
    assert any(r.method == "PUT" and r.path == f"/fal-ai/veo3/requests/{sent.id}/cancel"
               for r in fal.recorder.requests)


async def test_urls_off_the_channel_origin_are_not_followed():
    os.environ["VG_TEST_FAL_KEY"] = KEY
    backend = FalBackend(ChannelConfig(name="f", kind="fal", api_key_env="VG_TEST_FAL_KEY",
                                       models={"sora-2": "fal-ai/veo3"}))
    try:
        assert backend.config.base_url == "https://queue.fal.run"
        here = {"request_id": "r1",
                "response_url": "https://queue.fal.run/fal-ai/veo3/requests/r1"}
        elsewhere = {"request_id": "r2",
                     "response_url": "https://attacker.example/x/y/requests/r2"}
        assert backend.request_path(here, "fal-ai/veo3/fast") == "fal-ai/veo3/requests/r1"
        assert backend.request_path(elsewhere, "fal-ai/veo3/fast") == "fal-ai/veo3/requests/r2"
        assert backend.request_path({"request_id": "r3"}, "workflows/me/flow/x") == \
            "workflows/me/flow/requests/r3"
        assert await backend.client.headers_for("https://attacker.example/x") == {}
        assert await backend.client.headers_for("https://queue.fal.run/x") == {
            "Authorization": f"Key {KEY}"}
    finally:
        await backend.close()


def test_status_and_error_shapes():
    assert read_status({"status": "IN_QUEUE", "queue_position": 3}).state == "queued"
    assert read_status({"status": "IN_PROGRESS", "logs": None}).state == "in_progress"
    assert read_status({"status": "SOMETHING_NEW"}).state == "unknown"
    assert read_status("<html>").state == "unknown"
    failed = read_status({"status": "COMPLETED", "error": "Runner disconnected",
                          "error_type": "runner_disconnected"})
    assert (failed.state, failed.error_code) == ("failed", "upstream_error")
    assert fal_error({"detail": [{"type": "image_too_large", "msg": "too big"},
                                 {"type": "content_policy_violation", "msg": "flagged"}]}) \
        == ("content_policy_violation", "too big; flagged")


def test_fal_client_drives_the_fake(fal, monkeypatch):
    """fal-client reads FAL_QUEUE_RUN_HOST at import and always speaks https, so the test
    points it at the fake through the one constant it builds queue URLs from."""
    import fal_client
    import fal_client.client as fc

    monkeypatch.setattr(fc, "QUEUE_URL_FORMAT", fal.url + "/")
    monkeypatch.setenv("FAL_KEY", KEY)
    client = fal_client.SyncClient()
    handle = client.submit("fal-ai/veo3", arguments={
        "prompt": "sdk", "duration": "4s", "aspect_ratio": "9:16", "resolution": "720p"})
    assert handle.status_url == f"{fal.url}/fal-ai/veo3/requests/{handle.request_id}/status"
    assert isinstance(handle.status(with_logs=True), fal_client.Queued | fal_client.InProgress)
    result = handle.get(interval=0.05)
    assert result["video"]["url"].startswith(fal.cdn.url)
    assert isinstance(handle.status(), fal_client.Completed)
    assert client.status("fal-ai/veo3", handle.request_id).__class__ is fal_client.Completed

    refused = client.submit("fal-ai/veo3", arguments={"prompt": "[moderation]"})
    with pytest.raises(fal_client.client.FalClientHTTPError) as err:
        refused.get(interval=0.05)
    assert err.value.status_code == 422

    stuck = client.submit("fal-ai/kling-video/v2.1/master/text-to-video",
                          arguments={"prompt": "[stuck]", "duration": "5"})
    assert stuck.cancel_url.endswith(f"/fal-ai/kling-video/requests/{stuck.request_id}/cancel")
    stuck.cancel()
    assert fal.cancels == [stuck.request_id]
    assert fal.recorder.authorizations() == {f"Key {KEY}"}


def test_image_to_video_models_is_checked(tmp_path, monkeypatch):
    from vidgate.channels import ConfigError, load_channels

    monkeypatch.setenv("VG_TEST_FAL_KEY", KEY)
    path = tmp_path / "vidgate.yaml"
    path.write_text(
        "channels:\n"
        "  - {name: f, kind: fal, api_key_env: VG_TEST_FAL_KEY, models: {sora-2: fal-ai/veo3},\n"
        "     image_to_video_models: {sora-2-pro: fal-ai/veo3/image-to-video}}\n"
        "  - {name: o, kind: openai, base_url: 'http://127.0.0.1:9/v1', models: {sora-2: m},\n"
        "     image_to_video_models: {sora-2: m2}}\n")
    with pytest.raises(ConfigError) as err:
        load_channels(path)
    text = str(err.value)
    assert "channel 'f'" in text and "'sora-2-pro' is not in this channel's 'models'" in text
    assert "channel 'o'" in text and "not read by kind 'openai'" in text
    path.write_text(
        "channels:\n"
        "  - {name: f, kind: fal, api_key_env: VG_TEST_FAL_KEY, models: {sora-2: fal-ai/veo3},\n"
        "     image_to_video_models: {sora-2: fal-ai/veo3/image-to-video}}\n")
    (ch,) = load_channels(path)
    assert (ch.base_url, ch.sizes, ch.seconds) == (
        "https://queue.fal.run", ["1280x720", "720x1280", "1920x1080", "1080x1920"], [4, 6, 8])


def test_reference_is_cropped_to_the_requested_frame_only_when_needed():
    from vidgate.backends.framing import aspect_ratio, fit_reference, resolution

    assert (aspect_ratio(1280, 720), aspect_ratio(1080, 1920), aspect_ratio(720, 720)) == (
        "16:9", "9:16", "1:1")
    assert (resolution(1920, 1080), resolution(720, 1280)) == ("1080p", "720p")
    already = png(320, 180)
    assert fit_reference(already, 1280, 720) is already
    with Image.open(io.BytesIO(fit_reference(png(1000, 1000), 1280, 720))) as img:
        assert img.format == "PNG" and img.size == (992, 558)  # exactly 16:9, centred
    buf = io.BytesIO()
    Image.new("RGB", (600, 400), (1, 2, 3)).save(buf, format="JPEG")
    with Image.open(io.BytesIO(fit_reference(buf.getvalue(), 720, 1280))) as img:
        assert img.format == "JPEG" and img.width * 16 == img.height * 9


async def test_an_image_is_never_sent_to_a_text_only_app(tmp_path, database_url, fal):
    kling_text_only = {**KLING, "image_to_video_models": {}}
    async with gateway(tmp_path, database_url, [channel(fal, **kling_text_only)]) as gw:
        r = await gw.client.post(
            "/v1/videos", headers=gw.headers(),
            data={"prompt": "a kite", "size": "1920x1080", "seconds": "5"},
            files={"input_reference": ("ref.png", png(64, 36), "image/png")})
        assert r.status_code == 200, r.text
        result = await finished(gw, r.json()["id"])
    assert result["status"] == "failed" and result["error"]["code"] == "upstream_error"
    assert "image-to-video" in result["error"]["message"]
    assert not fal.requests  # nothing reached fal
