"""The `runway` kind end to end: vidgate in process, a channel pointing at the fake Runway
API (tests/fakes/runway.py), results on a second host standing in for Runway's CDN. The
official `runwayml` SDK drives the same fake, so the fake is held to Runway's own client."""

from __future__ import annotations

import base64
import io
import os

import pytest
from PIL import Image

from fakes.faults import DOWNLOAD_TRANSIENT, TRANSIENT
from fakes.gateway import FAST, gateway
from fakes.provider_fixtures import (  # noqa: F401
    clips_fixture,
    finish,
    servers_fixture,
    stored_info,
    wait_bound,
)
from fakes.runway import FakeRunway
from support import await_for, wait_for
from vidgate.channels import ChannelConfig
from vidgate.media import probe as media

KEY = "key_" + "ab" * 64


def _png(width: int = 64, height: int = 36) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 10)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def runway(servers, clips) -> FakeRunway:
    thread, cdn = servers
    fake = FakeRunway(key=KEY, clips=clips, cdn=cdn)
    fake.origin = thread.serve(fake.app())
    return fake


def channel(fake: FakeRunway, **overrides) -> ChannelConfig:
    os.environ["VG_TEST_RUNWAY_KEY"] = fake.key
    fields = {"name": "runway", "kind": "runway", "base_url": fake.url,
              "api_key_env": "VG_TEST_RUNWAY_KEY", "models": {"sora-2": "gen4.5"},
              **FAST, **overrides}
    return ChannelConfig(**fields)


def test_channel_defaults_come_from_the_kind(runway):
    config = ChannelConfig(name="r", kind="runway", models={"sora-2": "gen4_turbo"})
    assert config.base_url == "https://api.dev.runwayml.com/v1"
    assert config.sizes == ["1280x720", "720x1280", "1104x832", "832x1104", "960x960",
                            "1584x672"]
    assert config.seconds == [5, 10]


def test_the_official_sdk_drives_the_fake(runway, tmp_path):
    """create (both endpoints) + retrieve until SUCCEEDED + download + delete, with `runwayml`."""
    import httpx
    from runwayml import RunwayML

    client = RunwayML(api_key=KEY, base_url=runway.origin, max_retries=0)
    image = "data:image/png;base64," + base64.b64encode(_png()).decode()
    created = client.image_to_video.create(model="gen4_turbo", prompt_image=image,
                                           prompt_text="a red square", ratio="960:960",
                                           duration=5)
    text = client.text_to_video.create(model="gen4.5", prompt_text="waves", ratio="720:1280",
                                       duration=5)

    def succeeded(task_id):
        task = client.tasks.retrieve(task_id)
        assert task.status in ("PENDING", "THROTTLED", "RUNNING", "SUCCEEDED"), task
        return task if task.status == "SUCCEEDED" else None

    for task_id, size in ((created.id, (960, 960)), (text.id, (720, 1280))):
        task = wait_for(lambda task_id=task_id: succeeded(task_id), timeout=30)
        video = httpx.get(task.output[0])
        assert video.status_code == 200
        path = tmp_path / f"{task_id}.mp4"
        path.write_bytes(video.content)
        info = media.probe(path)
        assert (info.width, info.height) == size and round(info.duration) == 5
    assert runway.tasks[created.id].body["promptImage"] == image
    assert runway.tasks[created.id].path == "/v1/image_to_video"
    assert runway.tasks[text.id].path == "/v1/text_to_video"

    stuck = client.image_to_video.create(model="gen4_turbo", prompt_image=image,
                                         prompt_text="[stuck]", ratio="1280:720",
                                         duration=10)
    client.tasks.delete(stuck.id)
    assert client.tasks.retrieve(stuck.id).status == "CANCELLED"
    assert runway.cancels == [stuck.id]
    assert set(runway.versions) == {"2024-11-06"}


async def test_text_to_video_maps_size_and_seconds(tmp_path, database_url, runway, servers):
    async with gateway(tmp_path, database_url, [channel(runway)]) as gw:
        video = await gw.create(prompt="a lighthouse", size="720x1280", seconds="10")
        done = await finish(gw, video["id"])
        assert done["status"] == "completed", done
        info = await stored_info(gw, video["id"], tmp_path)
    assert (info.width, info.height, round(info.duration)) == (720, 1280, 10)
    (task,) = runway.tasks.values()
    assert task.path == "/v1/text_to_video"
    assert task.body == {"model": "gen4.5", "promptText": "a lighthouse", "ratio": "720:1280",
                         "duration": 10}


async def test_image_to_video_sends_a_data_uri(tmp_path, database_url, runway, servers):
    image = "data:image/png;base64," + base64.b64encode(_png()).decode()
    config = channel(runway, models={"sora-2": "gen4_turbo"},
                     extra_fields={"contentModeration": {"publicFigureThreshold": "low"}})
    async with gateway(tmp_path, database_url, [config]) as gw:
        video = await gw.create(prompt="the square turns", size="1280x720", seconds="5",
                                input_reference={"image_url": image})
        done = await finish(gw, video["id"])
        assert done["status"] == "completed", done
        info = await stored_info(gw, video["id"], tmp_path)
    assert (info.width, info.height, round(info.duration)) == (1280, 720, 5)
    (task,) = runway.tasks.values()
    assert task.path == "/v1/image_to_video"
    assert task.body["promptImage"] == image
    assert task.body["model"] == "gen4_turbo" and task.body["ratio"] == "1280:720"
    assert task.body["duration"] == 5 and task.body["promptText"] == "the square turns"
    assert task.body["contentModeration"] == {"publicFigureThreshold": "low"}


async def test_key_goes_only_to_the_api_host(tmp_path, database_url, runway, servers):
    _, cdn = servers
    async with gateway(tmp_path, database_url, [channel(runway)]) as gw:
        video = await gw.create(prompt="keys", size="1280x720", seconds="5")
        assert (await finish(gw, video["id"]))["status"] == "completed"
    assert runway.log.authorizations() == {f"Bearer {KEY}"}
    assert set(runway.versions) == {"2024-11-06"}
    assert cdn.recorder.requests and cdn.recorder.authorizations() == {None}


@pytest.mark.parametrize(("tag", "code"), [("[moderation]", "moderation_blocked"),
                                           ("[fail]", "upstream_error")])
async def test_failures_map_to_codes(tmp_path, database_url, runway, tag, code):
    async with gateway(tmp_path, database_url, [channel(runway)]) as gw:
        video = await gw.create(prompt=f"x {tag}", size="1280x720", seconds="5")
        done = await finish(gw, video["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == code, done


async def test_a_rejected_submit_fails_the_task_with_runways_reason(
        tmp_path, database_url, runway):
    # gen4_turbo has no text-to-video: Runway answers 400 with {"error": ...}
    config = channel(runway, models={"sora-2": "gen4_turbo"})
    async with gateway(tmp_path, database_url, [config]) as gw:
        video = await gw.create(prompt="text only", size="1280x720", seconds="5")
        done = await finish(gw, video["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "upstream_error"
    assert "not supported on this endpoint" in done["error"]["message"]
    assert not runway.tasks


async def test_transient_faults_never_fail_a_task(tmp_path, database_url, runway, servers):
    _, cdn = servers
    faults = TRANSIENT
    runway.faults.everywhere(0.4, faults)
    runway.faults.script("submit", ["500", "garbage"]).script("poll", ["429"])
    cdn.faults.kinds["download"] = DOWNLOAD_TRANSIENT
    cdn.faults.rates["download"] = 0.4
    async with gateway(tmp_path, database_url, [channel(runway)]) as gw:
        ids = [(await gw.create(prompt=f"chaos {i}", size="1280x720", seconds="5"))["id"]
               for i in range(6)]
        for video_id in ids:
            done = await finish(gw, video_id, timeout=120)
            assert done["status"] == "completed", done
    injected = {kind for (_, kind) in runway.faults.injected}
    assert {"500", "429", "garbage"} & injected


async def test_retry_after_is_honoured_on_polls(tmp_path, database_url, runway):
    async with gateway(tmp_path, database_url, [channel(runway)]) as gw:
        runway.faults.retry_after = 1
        runway.faults.rates["poll"] = 1.0
        runway.faults.kinds["poll"] = ("429",)
        video = await gw.create(prompt="patience", size="1280x720", seconds="5")

        async def three_polls():
            return len(runway.log.matching("GET", "/v1/tasks/")) >= 3

        await await_for(three_polls, timeout=30, what="three throttled polls")
        polls = runway.log.matching("GET", "/v1/tasks/")
        gaps = [b.at - a.at for a, b in zip(polls, polls[1:], strict=False)]
        assert min(gaps) >= 0.9, gaps  # the channel's own pace would be 0.05-0.3 s
        runway.faults.off()
        assert (await finish(gw, video["id"]))["status"] == "completed"


async def test_cancel_reaches_runway(tmp_path, database_url, runway):
    async with gateway(tmp_path, database_url, [channel(runway)]) as gw:
        video = await gw.create(prompt="forever [stuck]", size="1280x720", seconds="5")
        await wait_bound(gw, video["id"])
        r = await gw.client.delete(f"/v1/videos/{video['id']}", headers=gw.headers())
        assert r.status_code == 200
        (task,) = runway.tasks.values()

        async def cancelled():
            return task.id in runway.cancels

        await await_for(cancelled, timeout=30, what="the DELETE to reach Runway")
    assert runway.log.matching("DELETE", f"/v1/tasks/{task.id}")
    assert runway.view(task)["status"] == "CANCELLED"


def test_progress_and_states_are_read():
    from vidgate.backends.runway import read_task

    assert read_task({"status": "THROTTLED"}).state == "queued"
    running = read_task({"status": "RUNNING", "progress": 0.42})
    assert (running.state, running.progress) == ("in_progress", 42)
    assert read_task({"status": "SOMETHING_NEW"}).state == "unknown"
    assert read_task({"status": "SUCCEEDED", "output": []}).state == "unknown"
    cancelled = read_task({"status": "CANCELLED"})
    assert (cancelled.state, cancelled.error_code) == ("failed", "upstream_error")
    blocked = read_task({"status": "FAILED", "failureCode": "INPUT_PREPROCESSING.SAFETY.TEXT",
                         "failure": "see https://x.example/y"})
    assert blocked.error_code == "moderation_blocked" and "[url]" in blocked.error_message
    assert read_task(b"garbage").state == "unknown"
