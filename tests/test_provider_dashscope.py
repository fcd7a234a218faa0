"""The `dashscope` kind (Wan on Alibaba Cloud Model Studio) end to end through vidgate against
its fake (tests/fakes/dashscope.py), plus the official `dashscope` SDK driving that fake."""

from __future__ import annotations

import base64
import io
import os

import pytest
from PIL import Image

from fakes.dashscope import TIERS, serve_dashscope
from fakes.faults import TRANSIENT, Faults
from fakes.fixtures import fake_world_fixture, sample_media_fixture  # noqa: F401
from fakes.gateway import FAST, gateway
from support import await_for
from vidgate.backends.base import Job, UpstreamFailed
from vidgate.backends.dashscope import TIERS as ADAPTER_TIERS
from vidgate.backends.dashscope import DashScopeBackend, read_task
from vidgate.catalog import VideoRequest
from vidgate.channels import ChannelConfig
from vidgate.kinds import KINDS
from vidgate.media.probe import probe

MODEL = "wan2.6-t2v"


@pytest.fixture(scope="session")
def renders(tmp_path_factory):
    return tmp_path_factory.mktemp("wan-renders")


def _png(width: int = 64, height: int = 36) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 200)).save(buf, format="PNG")
    return buf.getvalue()


def wan_channel(fake, name: str = "wan", **overrides) -> ChannelConfig:
    env = f"VG_TEST_WAN_{name.upper()}"
    os.environ[env] = fake.key
    fields = {"name": name, "kind": "dashscope", "base_url": fake.url, "api_key_env": env,
              "models": {"sora-2": MODEL}, **FAST, **overrides}
    return ChannelConfig(**fields)


async def _finished(gw, video_id: str, timeout: float = 60) -> dict:
    async def done():
        video = await gw.get(video_id)
        return video if video["status"] in ("completed", "failed") else None

    return await await_for(done, timeout=timeout, interval=0.1, what=f"{video_id} to finish")


async def _stored(gw, video_id: str):
    rows = await gw.rows()
    return probe(gw.services.blobs.local_path(rows[video_id].video_key))


async def test_text_to_video_maps_size_length_and_fields(tmp_path, database_url, fake_world,
                                                         renders):
    fake = serve_dashscope(fake_world, renders)
    channel = wan_channel(fake, extra_fields={"prompt_extend": False, "watermark": False,
                                              "negative_prompt": "blurry",
                                              "num_inference_steps": 30})
    async with gateway(tmp_path, database_url, [channel]) as gw:
        video = await gw.create(model="sora-2", prompt="lanterns over a river",
                                size="1280x720", seconds="5", seed=9)
        done = await _finished(gw, video["id"])
        assert done["status"] == "completed", done
        info = await _stored(gw, video["id"])
    assert (info.width, info.height) == (1280, 720) and round(info.duration) == 5
    [task] = fake.tasks.values()
    assert task.body == {
        "model": MODEL,
        "input": {"prompt": "lanterns over a river", "negative_prompt": "blurry"},
        "parameters": {"prompt_extend": False, "watermark": False, "seed": 9, "duration": 5,
                       "size": "1280*720"},
    }


async def test_image_to_video_uses_the_i2v_model_and_a_tier(tmp_path, database_url,
                                                            fake_world, renders):
    fake = serve_dashscope(fake_world, renders)
    # A 4:3 picture for a 9:16 video: cropped to 9:16 first, so Wan keeps 9:16.
    image = "data:image/png;base64," + base64.b64encode(_png(400, 300)).decode()
    async with gateway(tmp_path, database_url, [wan_channel(fake)]) as gw:
        video = await gw.create(model="sora-2", prompt="the lanterns rise", size="720x1280",
                                seconds="10", input_reference={"image_url": image})
        done = await _finished(gw, video["id"])
        assert done["status"] == "completed", done
        info = await _stored(gw, video["id"])
    assert (info.width, info.height) == (720, 1280) and round(info.duration) == 10
    [task] = fake.tasks.values()
    assert task.model == "wan2.6-i2v"
    assert task.body["parameters"] == {"duration": 10, "resolution": "720P"}
    frame = base64.b64decode(task.body["input"]["img_url"].split(",", 1)[1])
    width, height = Image.open(io.BytesIO(frame)).size
    assert width * 1280 == height * 720  # exactly 9:16, the largest such crop of the picture


@pytest.mark.parametrize(("tag", "code"), [
    ("[moderation]", "moderation_blocked"),   # the task FAILS with DataInspectionFailed
    ("[refuse]", "moderation_blocked"),       # DataInspectionFailed at submit
    ("[fail]", "upstream_error"),
])
async def test_failures_map_to_the_spec_codes(tmp_path, database_url, fake_world, renders,
                                              tag, code):
    fake = serve_dashscope(fake_world, renders)
    async with gateway(tmp_path, database_url, [wan_channel(fake)]) as gw:
        video = await gw.create(model="sora-2", prompt=f"a flood {tag}", size="1280x720",
                                seconds="5")
        done = await _finished(gw, video["id"])
    assert done["status"] == "failed" and done["error"]["code"] == code, done


async def test_transient_faults_never_fail_a_task(tmp_path, database_url, fake_world, renders):
    faults = Faults(seed=11, kinds={c: TRANSIENT for c in ("submit", "poll")}, retry_after=1)
    faults.rates.update(submit=0.6, poll=0.5)
    faults.script("submit", ["503"]).script("poll", ["503"])
    fake = serve_dashscope(fake_world, renders, faults=faults)
    fake_world.files.faults.kinds["download"] = ("500", "503", "429", "slow", "reset")
    fake_world.files.faults.rates["download"] = 0.5
    fake_world.files.faults.script("download", ["503"])
    async with gateway(tmp_path, database_url, [wan_channel(fake, failure_threshold=50)]) as gw:
        ids = [(await gw.create(model="sora-2", prompt=f"rain {i}", size="1280x720",
                                seconds="5"))["id"] for i in range(4)]
        results = [await _finished(gw, i, timeout=120) for i in ids]
    assert [r["status"] for r in results] == ["completed"] * 4, results
    assert {"submit", "poll"} <= {call for call, _ in faults.injected}
    assert fake_world.files.faults.injected


async def test_cancel_reaches_dashscope_for_a_pending_task(tmp_path, database_url, fake_world,
                                                           renders):
    fake = serve_dashscope(fake_world, renders)
    async with gateway(tmp_path, database_url, [wan_channel(fake)]) as gw:
        video = await gw.create(model="sora-2", prompt="waiting [queued]", size="1280x720",
                                seconds="5")
        await await_for(lambda: _bound(gw, video["id"]), what="the task to reach DashScope")
        r = await gw.client.delete(f"/v1/videos/{video['id']}", headers=gw.headers())
        assert r.status_code == 200
        row = await await_for(lambda: _ended(gw, video["id"]), what="the task to end")
    assert (row.status, row.error_code) == ("failed", "cancelled")
    [task] = fake.tasks.values()
    assert fake.cancels == [task.id] and fake.status(task) == "CANCELED"


async def test_key_goes_only_to_the_api_origin(tmp_path, database_url, fake_world, renders):
    fake = serve_dashscope(fake_world, renders, key="sk-wan-only-here")
    async with gateway(tmp_path, database_url, [wan_channel(fake)]) as gw:
        video = await gw.create(model="sora-2", prompt="a pagoda", size="1280x720",
                                seconds="5")
        assert (await _finished(gw, video["id"]))["status"] == "completed"
    assert fake.recorder.authorizations() == {"Bearer sk-wan-only-here"}
    assert fake_world.files.recorder.requests
    assert fake_world.files.recorder.authorizations() == {None}


def test_the_official_sdk_drives_the_fake(fake_world, renders):
    import dashscope
    from dashscope import VideoSynthesis

    fake = serve_dashscope(fake_world, renders, key="sk-sdk")
    saved = dashscope.base_http_api_url
    dashscope.base_http_api_url = fake.url
    try:
        started = VideoSynthesis.async_call(model=MODEL, prompt="a paper crane",
                                            size="832*480", duration=5, seed=4,
                                            api_key="sk-sdk")
        assert started.status_code == 200, started.message
        assert started.output.task_status == "PENDING"
        done = VideoSynthesis.wait(started, api_key="sk-sdk", wait_timeout=60)
        assert done.output.task_status == "SUCCEEDED", done
        assert done.output.video_url.startswith(fake_world.files.url)
        assert done.usage.video_duration == 5
        sent = fake.tasks[started.output.task_id].body
        assert sent["parameters"]["size"] == "832*480" and sent["parameters"]["seed"] == 4

        pending = VideoSynthesis.async_call(model=MODEL, prompt="later [queued]",
                                            size="1280*720", duration=5, api_key="sk-sdk")
        assert VideoSynthesis.cancel(pending, api_key="sk-sdk").status_code == 200
        fetched = VideoSynthesis.fetch(pending, api_key="sk-sdk")
        assert fetched.output.task_status == "CANCELED"
        refused = VideoSynthesis.async_call(model=MODEL, prompt="x [refuse]", size="1280*720",
                                            api_key="sk-sdk")
        assert (refused.status_code, refused.code) == (400, "DataInspectionFailed")
    finally:
        dashscope.base_http_api_url = saved


def test_the_kind_default_sizes_are_the_tables():
    fake_sizes = {f"{w}x{h}" for sizes in TIERS.values() for w, h in sizes}
    assert set(KINDS["dashscope"].sizes) == set(ADAPTER_TIERS) == fake_sizes
    for tier, sizes in TIERS.items():
        assert all(ADAPTER_TIERS[f"{w}x{h}"] == tier for w, h in sizes)


async def test_a_size_wan_cannot_make_is_refused_not_changed(tmp_path):
    os.environ["VG_TEST_WAN_UNIT"] = "k"
    backend = DashScopeBackend(ChannelConfig(name="u", kind="dashscope",
                                             api_key_env="VG_TEST_WAN_UNIT",
                                             models={"sora-2": MODEL}, sizes=["1080x1080"]))
    req = VideoRequest(model="sora-2", prompt="p", width=1080, height=1080, seconds=5)
    with pytest.raises(UpstreamFailed, match="cannot produce 1080x1080"):
        await backend.task_body(Job("t", req, tmp_path))
    assert backend.config.base_url == "https://dashscope-intl.aliyuncs.com/api/v1"
    await backend.close()


def test_read_task_statuses():
    def task(**output):
        return {"request_id": "r", "output": {"task_id": "t", **output}}

    assert read_task(task(task_status="PENDING")).state == "queued"
    assert read_task(task(task_status="SUSPENDED")).state == "queued"
    assert read_task(task(task_status="RUNNING")).state == "in_progress"
    assert read_task(task(task_status="UNKNOWN")).state == "unknown"
    assert read_task(b"<html>").state == "unknown"
    done = read_task(task(task_status="SUCCEEDED", video_url="https://oss/x.mp4"))
    assert (done.state, done.result_url) == ("completed", "https://oss/x.mp4")
    for code in ("DataInspectionFailed", "InternalError.Algo.DataInspectionFailed",
                 "IPInfringementSuspect"):
        result = read_task(task(task_status="FAILED", code=code, message="m"))
        assert (result.state, result.error_code) == ("failed", "moderation_blocked")
    assert read_task(task(task_status="FAILED", code="InternalError")).error_code == \
        "upstream_error"
    assert read_task(task(task_status="CANCELED")).error_code == "upstream_error"


async def _ended(gw, video_id: str):
    row = (await gw.rows())[video_id]
    return row if row.status in ("completed", "failed") else None


async def _bound(gw, video_id: str) -> bool:
    return bool((await gw.rows())[video_id].upstream_id)
