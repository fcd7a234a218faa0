"""The `ark` kind (Seedance on Volcengine Ark / BytePlus ModelArk) end to end through vidgate
against its fake (tests/fakes/ark.py), plus the official Ark SDK driving that fake."""

from __future__ import annotations

import base64
import dataclasses
import io
import os

import pytest
from PIL import Image

from fakes.ark import serve_ark
from fakes.faults import TRANSIENT, Faults
from fakes.fixtures import fake_world_fixture, sample_media_fixture  # noqa: F401
from fakes.gateway import FAST, gateway
from support import await_for
from vidgate.backends.ark import SIZES, ArkBackend, read_task
from vidgate.backends.base import Job, UpstreamFailed
from vidgate.catalog import VideoRequest
from vidgate.channels import ChannelConfig
from vidgate.kinds import KINDS
from vidgate.media.probe import probe

MODEL = "seedance-1-5-pro-251215"


@pytest.fixture(scope="session")
def renders(tmp_path_factory):
    """Rendered results shared by the tests (one per size and length)."""
    return tmp_path_factory.mktemp("ark-renders")


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 36), (200, 20, 30)).save(buf, format="PNG")
    return buf.getvalue()


def ark_channel(ark, name: str = "seedance", **overrides) -> ChannelConfig:
    env = f"VG_TEST_ARK_{name.upper()}"
    os.environ[env] = ark.key
    fields = {"name": name, "kind": "ark", "base_url": ark.url, "api_key_env": env,
              "models": {"sora-2": MODEL}, **FAST, **overrides}
    return ChannelConfig(**fields)


async def _finished(gw, video_id: str, timeout: float = 60) -> dict:
    async def done():
        video = await gw.get(video_id)
        return video if video["status"] in ("completed", "failed") else None

    return await await_for(done, timeout=timeout, interval=0.1, what=f"{video_id} to finish")


async def _stored(gw, video_id: str):
    rows = await gw.rows()
    path = gw.services.blobs.local_path(rows[video_id].video_key)
    return probe(path)


async def test_text_to_video_maps_size_length_and_fields(tmp_path, database_url, fake_world,
                                                         renders):
    ark = serve_ark(fake_world, renders)
    channel = ark_channel(ark, extra_fields={"camera_fixed": True, "watermark": False,
                                             "num_inference_steps": 30})
    async with gateway(tmp_path, database_url, [channel]) as gw:
        video = await gw.create(model="sora-2", prompt="a red kite over dunes",
                                size="1280x720", seconds="5", seed=77)
        done = await _finished(gw, video["id"])
        assert done["status"] == "completed", done
        info = await _stored(gw, video["id"])
    assert (info.width, info.height) == (1280, 720)
    assert round(info.duration) == 5
    [task] = ark.tasks.values()
    body = task.body
    assert body["model"] == MODEL
    assert body["content"] == [{"type": "text", "text": "a red kite over dunes"}]
    assert (body["resolution"], body["ratio"], body["duration"]) == ("720p", "16:9", 5)
    assert body["seed"] == 77 and body["camera_fixed"] is True and body["watermark"] is False
    assert "num_inference_steps" not in body  # not an Ark parameter: it would be refused


async def test_image_to_video_sends_the_first_frame(tmp_path, database_url, fake_world, renders):
    ark = serve_ark(fake_world, renders)
    image = "data:image/png;base64," + base64.b64encode(_png()).decode()
    async with gateway(tmp_path, database_url, [ark_channel(ark)]) as gw:
        video = await gw.create(model="sora-2", prompt="the kite lifts off", size="720x1280",
                                seconds="8", input_reference={"image_url": image})
        done = await _finished(gw, video["id"])
        assert done["status"] == "completed", done
        info = await _stored(gw, video["id"])
    assert (info.width, info.height) == (720, 1280)
    assert round(info.duration) == 8
    [task] = ark.tasks.values()
    assert (task.body["resolution"], task.body["ratio"], task.body["duration"]) == (
        "720p", "9:16", 8)
    frame = task.image
    assert frame["role"] == "first_frame"
    assert base64.b64decode(frame["image_url"]["url"].split(",", 1)[1]) == _png()


@pytest.mark.parametrize(("tag", "code"), [
    ("[moderation]", "moderation_blocked"),   # OutputVideoSensitiveContentDetected on the task
    ("[refuse]", "moderation_blocked"),       # InputTextSensitiveContentDetected at submit
    ("[fail]", "upstream_error"),
    ("[expired]", "upstream_error"),
])
async def test_failures_map_to_the_spec_codes(tmp_path, database_url, fake_world, renders,
                                              tag, code):
    ark = serve_ark(fake_world, renders)
    async with gateway(tmp_path, database_url, [ark_channel(ark)]) as gw:
        video = await gw.create(model="sora-2", prompt=f"a storm {tag}", size="1280x720",
                                seconds="5")
        done = await _finished(gw, video["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == code, done


async def test_transient_faults_never_fail_a_task(tmp_path, database_url, fake_world, renders):
    faults = Faults(seed=11, kinds={c: TRANSIENT for c in ("submit", "poll")}, retry_after=1)
    faults.rates.update(submit=0.6, poll=0.5)
    faults.script("submit", ["503"]).script("poll", ["503"])
    ark = serve_ark(fake_world, renders, faults=faults)
    fake_world.files.faults.kinds["download"] = ("500", "503", "429", "slow", "reset")
    fake_world.files.faults.rates["download"] = 0.5
    fake_world.files.faults.script("download", ["503"])
    async with gateway(tmp_path, database_url, [ark_channel(ark, failure_threshold=50)]) as gw:
        ids = [(await gw.create(model="sora-2", prompt=f"calm sea {i}", size="1280x720",
                                seconds="5"))["id"] for i in range(4)]
        results = [await _finished(gw, i, timeout=120) for i in ids]
    assert [r["status"] for r in results] == ["completed"] * 4, results
    injected = {call for call, _ in faults.injected}
    assert {"submit", "poll"} <= injected
    assert fake_world.files.faults.injected


async def test_cancel_reaches_ark_for_a_queued_task(tmp_path, database_url, fake_world, renders):
    ark = serve_ark(fake_world, renders)
    async with gateway(tmp_path, database_url, [ark_channel(ark)]) as gw:
        video = await gw.create(model="sora-2", prompt="waiting [queued]", size="1280x720",
                                seconds="5")
        await await_for(lambda: _bound(gw, video["id"]), what="the task to reach Ark")
        r = await gw.client.delete(f"/v1/videos/{video['id']}", headers=gw.headers())
        assert r.status_code == 200
        row = await await_for(lambda: _ended(gw, video["id"]), what="the task to end")
    assert (row.status, row.error_code) == ("failed", "cancelled")
    await await_for(_async(lambda: ark.cancels), what="the DELETE to reach Ark")
    [task] = ark.tasks.values()
    assert ark.cancels == [task.id] and ark.status(task) == "cancelled"


async def test_key_goes_only_to_the_api_origin(tmp_path, database_url, fake_world, renders):
    ark = serve_ark(fake_world, renders, key="ark-only-here")
    async with gateway(tmp_path, database_url, [ark_channel(ark)]) as gw:
        video = await gw.create(model="sora-2", prompt="a quiet harbour", size="1280x720",
                                seconds="5")
        assert (await _finished(gw, video["id"]))["status"] == "completed"
    assert ark.recorder.authorizations() == {"Bearer ark-only-here"}
    assert fake_world.files.recorder.requests  # the result came from the CDN origin...
    assert fake_world.files.recorder.authorizations() == {None}  # ...without the key


def test_the_official_sdk_drives_the_fake(fake_world, renders):
    from volcenginesdkarkruntime import Ark

    ark = serve_ark(fake_world, renders, key="sdk-key")
    client = Ark(base_url=ark.url, api_key="sdk-key", max_retries=0)
    created = client.content_generation.tasks.create(
        model=MODEL, content=[{"type": "text", "text": "a paper boat"}],
        resolution="480p", ratio="1:1", duration=4, seed=3, camera_fixed=False,
        watermark=True)

    def finished():
        task = client.content_generation.tasks.get(task_id=created.id)
        return task if task.status in ("succeeded", "failed") else None

    from support import wait_for
    task = wait_for(finished, timeout=60, what="the SDK's task to finish")
    assert task.status == "succeeded" and task.content.video_url.startswith(fake_world.files.url)
    assert (task.resolution, task.ratio, task.duration, task.seed) == ("480p", "1:1", 4, 3)
    queued = client.content_generation.tasks.create(
        model=MODEL, content=[{"type": "text", "text": "later [queued]"}],
        resolution="720p", ratio="16:9", duration=5)
    client.content_generation.tasks.delete(queued.id)
    assert client.content_generation.tasks.get(task_id=queued.id).status == "cancelled"
    client.content_generation.tasks.delete(created.id)  # a finished task's record goes
    assert created.id in ark.tasks and ark.tasks[created.id].deleted


def test_the_kind_default_sizes_are_the_mapping_table():
    assert set(KINDS["ark"].sizes) == set(SIZES)
    for size, (resolution, ratio) in SIZES.items():
        from fakes.ark import TABLE
        assert TABLE[(resolution, ratio)] == tuple(int(v) for v in size.split("x"))


async def test_a_size_seedance_cannot_make_is_refused_not_changed(tmp_path):
    os.environ["VG_TEST_ARK_UNIT"] = "k"
    backend = ArkBackend(ChannelConfig(name="u", kind="ark", api_key_env="VG_TEST_ARK_UNIT",
                                       models={"sora-2": MODEL}, sizes=["1080x1080"]))
    req = VideoRequest(model="sora-2", prompt="p", width=1080, height=1080, seconds=5)
    with pytest.raises(UpstreamFailed, match="cannot produce 1080x1080"):
        backend.task_body(Job("t", req, tmp_path))
    body = backend.task_body(Job("t", dataclasses.replace(req, width=960, height=960),
                                 tmp_path), callback_url="https://gw.example/cb/x")
    assert body["callback_url"] == "https://gw.example/cb/x"
    assert backend.config.base_url == "https://ark.cn-beijing.volces.com/api/v3"
    await backend.close()


def test_read_task_statuses():
    assert read_task({"status": "queued"}).state == "queued"
    assert read_task({"status": "running"}).state == "in_progress"
    assert read_task({"status": "something_new"}).state == "unknown"
    assert read_task("garbage").state == "unknown"
    done = read_task({"status": "succeeded", "content": {"video_url": "https://cdn/x.mp4"}})
    assert (done.state, done.result_url) == ("completed", "https://cdn/x.mp4")
    for code in ("InputImageSensitiveContentDetected.PrivacyInformation",
                 "OutputVideoSensitiveContentDetected", "InputTextRiskDetection"):
        result = read_task({"status": "failed", "error": {"code": code, "message": "m"}})
        assert (result.state, result.error_code) == ("failed", "moderation_blocked")
    internal = read_task({"status": "failed", "error": {
        "code": "ContentSecurityDetectionError", "message": "Internal error."}})
    assert internal.error_code == "upstream_error"
    assert read_task({"status": "expired"}).error_code == "upstream_error"


async def _ended(gw, video_id: str):
    row = (await gw.rows())[video_id]
    return row if row.status in ("completed", "failed") else None


async def _bound(gw, video_id: str) -> bool:
    return bool((await gw.rows())[video_id].upstream_id)


def _async(fn):
    async def call():
        return fn()
    return call
