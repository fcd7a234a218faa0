"""The `luma` kind end to end: vidgate in process, a channel pointing at the fake Dream
Machine API (tests/fakes/luma.py), videos on a second host standing in for Luma's CDN. The
official `lumaai` SDK drives the same fake, so the fake is held to Luma's own client."""

from __future__ import annotations

import base64
import io
import os

import httpx
import pytest
from PIL import Image

from fakes.faults import DOWNLOAD_TRANSIENT, TRANSIENT
from fakes.fixtures import sample_media_fixture  # noqa: F401
from fakes.gateway import FAST, gateway
from fakes.luma import FakeLuma
from fakes.provider_fixtures import (  # noqa: F401
    clips_fixture,
    finish,
    servers_fixture,
    stored_info,
    wait_bound,
)
from fakes.upstream import FakeUpstream
from support import await_for, wait_for
from vidgate.channels import ChannelConfig
from vidgate.media import probe as media

KEY = "luma-" + "cd" * 32


def _image() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 36), (20, 40, 200)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture
def luma(servers, clips) -> FakeLuma:
    thread, cdn = servers
    fake = FakeLuma(key=KEY, clips=clips, cdn=cdn)
    fake.origin = thread.serve(fake.app())
    return fake


def channel(fake: FakeLuma, **overrides) -> ChannelConfig:
    os.environ["VG_TEST_LUMA_KEY"] = fake.key
    fields = {"name": "luma", "kind": "luma", "base_url": fake.url,
              "api_key_env": "VG_TEST_LUMA_KEY", "models": {"sora-2": "ray-2"},
              "metadata_fields": ["loop"], **FAST, **overrides}
    return ChannelConfig(**fields)


def test_channel_defaults_come_from_the_kind():
    config = ChannelConfig(name="l", kind="luma", models={"sora-2": "ray-2"})
    assert config.base_url == "https://api.lumalabs.ai/dream-machine/v1"
    assert config.sizes == ["960x540", "540x960", "1280x720", "720x1280", "1920x1080",
                            "1080x1920"]
    assert config.seconds == [5, 9]
    assert config.serves("sora-2", "1280x720", 5)
    assert not config.serves("sora-2", "1280x720", 5, image=True)


def test_the_official_sdk_drives_the_fake(luma, tmp_path):
    """create + get until completed + download + delete, with `lumaai`."""
    from lumaai import LumaAI

    client = LumaAI(auth_token=KEY, base_url=luma.url, max_retries=0)
    created = client.generations.create(model="ray-2", prompt="a lighthouse",
                                        aspect_ratio="9:16", resolution="540p", duration="9s",
                                        loop=True)
    assert created.state == "queued" and created.id

    def completed():
        gen = client.generations.get(created.id)
        assert gen.state in ("queued", "dreaming", "completed"), gen
        return gen if gen.state == "completed" else None

    gen = wait_for(completed, timeout=30)
    video = httpx.get(gen.assets.video)
    assert video.status_code == 200
    path = tmp_path / "luma.mp4"
    path.write_bytes(video.content)
    info = media.probe(path)
    assert (info.width, info.height, round(info.duration)) == (540, 960, 9)
    assert luma.generations[created.id].path == "/dream-machine/v1/generations/video"
    assert luma.generations[created.id].body["loop"] is True

    keyframed = client.generations.create(
        model="ray-flash-2", prompt="[stuck]",
        keyframes={"frame0": {"type": "image", "url": "https://cdn.example/frame.jpg"}})
    client.generations.delete(keyframed.id)
    assert luma.deletes == [keyframed.id]
    from lumaai import NotFoundError

    with pytest.raises(NotFoundError):
        client.generations.get(keyframed.id)
    # a data URI is not an image URL: refused with Luma's error object
    from lumaai import BadRequestError

    with pytest.raises(BadRequestError) as refused:
        client.generations.create(model="ray-2", prompt="x",
                                  keyframes={"frame0": {"type": "image", "url": _image()}})
    assert "detail" in refused.value.body


async def test_text_to_video_maps_size_and_seconds(tmp_path, database_url, luma):
    async with gateway(tmp_path, database_url, [channel(luma)]) as gw:
        video = await gw.create(prompt="dunes", size="1920x1080", seconds="5",
                                metadata={"loop": True, "other": 1})
        done = await finish(gw, video["id"])
        assert done["status"] == "completed", done
        info = await stored_info(gw, video["id"], tmp_path)
    assert (info.width, info.height, round(info.duration)) == (1920, 1080, 5)
    (gen,) = luma.generations.values()
    assert gen.path == "/dream-machine/v1/generations/video"
    assert gen.body == {"model": "ray-2", "prompt": "dunes", "aspect_ratio": "16:9",
                        "resolution": "1080p", "duration": "5s", "loop": True}


async def test_image_to_video_is_refused_at_creation(tmp_path, database_url, luma):
    async with gateway(tmp_path, database_url, [channel(luma)]) as gw:
        r = await gw.client.post("/v1/videos", headers=gw.headers(), json={
            "prompt": "animate", "size": "1280x720", "seconds": "5",
            "input_reference": {"image_url": _image()}})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "no_available_channel"
        assert error["param"] == "input_reference"
        assert "reference image" in error["message"]
        assert not await gw.rows()
        assert not gw.services.blobs.root.exists() or not any(
            p.is_file() for p in gw.services.blobs.root.rglob("*"))
    assert not luma.generations and not luma.log.hits


async def test_image_jobs_go_to_a_channel_that_takes_images(
        tmp_path, database_url, luma, servers, sample_media):
    """With Luma first in priority, text jobs go to Luma and image jobs to the other."""
    thread, cdn = servers
    other = FakeUpstream("openai", key="sk-other", media=sample_media, files=cdn)
    other.origin = thread.serve(other.app())
    os.environ["VG_TEST_OTHER_KEY"] = "sk-other"
    second = ChannelConfig(name="other", kind="openai", base_url=other.url,
                           api_key_env="VG_TEST_OTHER_KEY", models={"sora-2": "m"}, **FAST)
    async with gateway(tmp_path, database_url, [channel(luma, priority=10), second]) as gw:
        text = await gw.create(prompt="text", size="1280x720", seconds="5")
        image = await gw.create(prompt="image", size="1280x720", seconds="5",
                                input_reference={"image_url": _image()})
        for video in (text, image):
            assert (await finish(gw, video["id"]))["status"] == "completed"
        rows = await gw.rows()
    assert rows[text["id"]].backend == "luma" and rows[image["id"]].backend == "other"
    assert len(luma.generations) == 1 and len(other.jobs) == 1


async def test_key_goes_only_to_the_api_host(tmp_path, database_url, luma, servers):
    _, cdn = servers
    async with gateway(tmp_path, database_url, [channel(luma)]) as gw:
        video = await gw.create(prompt="keys", size="720x1280", seconds="5")
        assert (await finish(gw, video["id"]))["status"] == "completed"
    assert luma.log.authorizations() == {f"Bearer {KEY}"}
    assert cdn.recorder.requests and cdn.recorder.authorizations() == {None}


@pytest.mark.parametrize(("tag", "code"), [("[moderation]", "moderation_blocked"),
                                           ("[fail]", "upstream_error")])
async def test_failures_map_to_codes(tmp_path, database_url, luma, tag, code):
    async with gateway(tmp_path, database_url, [channel(luma)]) as gw:
        video = await gw.create(prompt=f"x {tag}", size="1280x720", seconds="5")
        done = await finish(gw, video["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == code, done


async def test_a_rejected_submit_fails_the_task_with_lumas_detail(tmp_path, database_url,
                                                                  luma):
    config = channel(luma, models={"sora-2": "ray-9"})  # not a Luma model
    async with gateway(tmp_path, database_url, [config]) as gw:
        video = await gw.create(prompt="bad model", size="1280x720", seconds="5")
        done = await finish(gw, video["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "upstream_error"
    assert "model: must be one of" in done["error"]["message"]


async def test_transient_faults_never_fail_a_task(tmp_path, database_url, luma, servers):
    _, cdn = servers
    luma.faults.everywhere(0.4, TRANSIENT)
    luma.faults.script("submit", ["500", "garbage"]).script("poll", ["429"])
    cdn.faults.kinds["download"] = DOWNLOAD_TRANSIENT
    cdn.faults.rates["download"] = 0.4
    async with gateway(tmp_path, database_url, [channel(luma)]) as gw:
        ids = [(await gw.create(prompt=f"chaos {i}", size="1280x720", seconds="5"))["id"]
               for i in range(6)]
        for video_id in ids:
            done = await finish(gw, video_id, timeout=120)
            assert done["status"] == "completed", done
    injected = {kind for (_, kind) in luma.faults.injected}
    assert {"500", "429", "garbage"} & injected


async def test_retry_after_is_honoured_on_submit(tmp_path, database_url, luma):
    async with gateway(tmp_path, database_url, [channel(luma)]) as gw:
        luma.faults.retry_after = 1
        luma.faults.rates["submit"] = 1.0
        luma.faults.kinds["submit"] = ("429",)
        video = await gw.create(prompt="patience", size="1280x720", seconds="5")

        async def three_submits():
            return len(luma.log.matching("POST", "/dream-machine/v1/generations")) >= 3

        await await_for(three_submits, timeout=30, what="three throttled submits")
        posts = luma.log.matching("POST", "/dream-machine/v1/generations")
        gaps = [b.at - a.at for a, b in zip(posts, posts[1:], strict=False)]
        assert min(gaps) >= 0.9, gaps  # the channel's own pace would be 0.05-0.3 s
        assert (await gw.get(video["id"]))["status"] == "queued"
        luma.faults.off()
        assert (await finish(gw, video["id"]))["status"] == "completed"


async def test_cancel_deletes_the_generation(tmp_path, database_url, luma):
    async with gateway(tmp_path, database_url, [channel(luma)]) as gw:
        video = await gw.create(prompt="forever [stuck]", size="1280x720", seconds="5")
        await wait_bound(gw, video["id"])
        r = await gw.client.delete(f"/v1/videos/{video['id']}", headers=gw.headers())
        assert r.status_code == 200
        (gen,) = luma.generations.values()

        async def deleted():
            return gen.id in luma.deletes

        await await_for(deleted, timeout=30, what="the DELETE to reach Luma")
    assert luma.log.matching("DELETE", f"/dream-machine/v1/generations/{gen.id}")


def test_states_are_read():
    from vidgate.backends.luma import read_generation

    assert read_generation({"state": "queued"}).state == "queued"
    assert read_generation({"state": "dreaming"}).state == "in_progress"
    assert read_generation({"state": "completed", "assets": None}).state == "unknown"
    assert read_generation({"state": "new-state"}).state == "unknown"
    failed = read_generation({"state": "failed", "failure_reason": None})
    assert (failed.state, failed.error_code) == ("failed", "upstream_error")
    assert read_generation([1, 2]).state == "unknown"


def test_a_channel_cannot_widen_lumas_sizes_or_lengths(tmp_path, monkeypatch):
    import yaml

    from vidgate.channels import ConfigError, load_channels

    monkeypatch.setenv("LUMA_KEY_FOR_CONFIG", "x")
    path = tmp_path / "vidgate.yaml"
    path.write_text(yaml.safe_dump({"channels": [{
        "name": "luma", "kind": "luma", "api_key_env": "LUMA_KEY_FOR_CONFIG",
        "models": {"sora-2": "ray-2"}, "sizes": ["1280x720", "720x720"], "seconds": [5, 8]}]}))
    with pytest.raises(ConfigError) as error:
        load_channels(path)
    message = str(error.value)
    assert "field 'sizes': kind 'luma' cannot produce 720x720" in message
    assert "field 'seconds': kind 'luma' cannot produce 8" in message
    path.write_text(yaml.safe_dump({"channels": [{
        "name": "luma", "kind": "luma", "models": {"sora-2": "ray-2"},
        "sizes": ["1280x720"], "seconds": [5]}]}))
    (config,) = load_channels(path)
    assert config.sizes == ["1280x720"] and config.seconds == [5]


async def test_remix_on_luma_only_is_refused(tmp_path, database_url, luma):
    """A remix starts from the source's frame (Luma cannot remix by id), so it is an image
    job: with only Luma configured it is refused up front, and nothing is written."""
    async with gateway(tmp_path, database_url, [channel(luma)]) as gw:
        video = await gw.create(prompt="source", size="1280x720", seconds="5")
        assert (await finish(gw, video["id"]))["status"] == "completed"
        r = await gw.client.post(f"/v1/videos/{video['id']}/remix", headers=gw.headers(),
                                 json={"prompt": "again"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "no_available_channel"
        assert r.json()["error"]["param"] == "video_id"
        assert list(await gw.rows()) == [video["id"]]
    assert len(luma.generations) == 1
