"""The `gemini` kind (Veo on the Gemini API) end to end: vidgate with a channel pointing at
the fake of tests/fakes/gemini.py, which the official google-genai SDK drives first."""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

import pytest
from PIL import Image

from fakes.faults import DOWNLOAD_TRANSIENT, TRANSIENT, Faults
from fakes.gateway import FAST, gateway
from fakes.gemini import GeminiWorld
from fakes.veo import veo_clips_fixture  # noqa: F401
from support import await_for
from vidgate.channels import ChannelConfig, ConfigError, load_channels
from vidgate.media import probe as media

MODEL = "veo-3.1-generate-preview"
KEY = "gk-test-secret"


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 18), (200, 20, 20)).save(buf, format="PNG")
    return buf.getvalue()


def _data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.fixture
def world(veo_clips):
    world = GeminiWorld(veo_clips)
    yield world
    world.close()


def _channel(api, name: str = "veo", **overrides) -> ChannelConfig:
    env = f"VG_TEST_GEMINI_{name.upper().replace('-', '_')}"
    os.environ[env] = api.key
    fields = {"name": name, "kind": "gemini", "base_url": api.url, "api_key_env": env,
              "models": {"sora-2": MODEL}, **FAST, **overrides}
    return ChannelConfig(**fields)


async def _finish(gw, video_id: str, timeout: float = 60) -> dict:
    async def done():
        video = await gw.get(video_id)
        return video if video["status"] in ("completed", "failed") else None

    return await await_for(done, timeout=timeout, interval=0.1, what=f"{video_id} to finish")


async def _stored(gw, video_id: str, tmp_path: Path) -> media.MediaInfo:
    r = await gw.client.get(f"/v1/videos/{video_id}/content", headers=gw.headers())
    assert r.status_code == 200, r.text
    path = tmp_path / f"{video_id}.mp4"
    path.write_bytes(r.content)
    return media.probe(path)


def _job_for(api, prompt: str):
    return next(job for job in api.jobs.values() if job.prompt == prompt)


def test_google_genai_sdk_drives_the_fake(world):
    """The fake against Google's own client: create, poll until done, download."""
    from google import genai
    from google.genai import types

    api = world.add(KEY, job_seconds=0.2)
    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=api.origin))
    operation = client.models.generate_videos(
        model=MODEL,
        source=types.GenerateVideosSource(
            prompt="a red kite", image=types.Image(image_bytes=_png(), mime_type="image/png")),
        config=types.GenerateVideosConfig(aspect_ratio="9:16", resolution="720p",
                                          duration_seconds=4, negative_prompt="blur"),
    )
    deadline = time.monotonic() + 30
    while not operation.done:
        assert time.monotonic() < deadline
        time.sleep(0.1)
        operation = client.operations.get(operation)
    uri = operation.result.generated_videos[0].video.uri
    assert uri.startswith(api.url + "/files/")
    # the SDK takes the file id out of https URIs only; the fake serves plain http
    data = client.files.download(file="files/" + uri.split("/files/")[1].split(":")[0])
    path = world.clips.folder / "sdk.mp4"
    path.write_bytes(data)
    info = media.probe(path)
    assert (info.width, info.height, round(info.duration)) == (720, 1280, 4)
    sent = _job_for(api, "a red kite").body
    assert sent["parameters"] == {"aspectRatio": "9:16", "resolution": "720p",
                                  "durationSeconds": 4, "negativePrompt": "blur"}
    assert sent["instances"][0]["image"] == {
        "bytesBase64Encoded": base64.b64encode(_png()).decode(), "mimeType": "image/png"}
    assert api.log.credentials() == {(KEY, None)}


async def test_text_and_image_to_video_with_exact_size_and_length(tmp_path, database_url,
                                                                 world):
    api = world.add(KEY)
    channels = [_channel(api, "veo-720"),
                _channel(api, "veo-1080", sizes=["1920x1080"], seconds=[8])]
    async with gateway(tmp_path, database_url, channels) as gw:
        text = await gw.create(prompt="text clip", size="1280x720", seconds="4",
                               metadata={"negative_prompt": "fog"})
        image = await gw.create(prompt="image clip", size="720x1280", seconds="8",
                                input_reference={"image_url": _data_url(_png())})
        full_hd = await gw.create(prompt="1080p clip", size="1920x1080", seconds="8")
        results = {}
        for video in (text, image, full_hd):
            done = await _finish(gw, video["id"])
            assert done["status"] == "completed", (done.get("error"), done)
            info = await _stored(gw, video["id"], tmp_path)
            results[video["id"]] = (info.width, info.height, round(info.duration))
        rows = await gw.rows()
    assert results == {text["id"]: (1280, 720, 4), image["id"]: (720, 1280, 8),
                       full_hd["id"]: (1920, 1080, 8)}
    assert rows[full_hd["id"]].backend == "veo-1080"

    sent = _job_for(api, "text clip")
    assert sent.model == MODEL
    assert sent.body == {"instances": [{"prompt": "text clip"}], "parameters": {
        "negativePrompt": "fog", "aspectRatio": "16:9", "resolution": "720p",
        "durationSeconds": 4}}
    sent = _job_for(api, "image clip").body
    assert sent["instances"][0]["image"] == {
        "bytesBase64Encoded": base64.b64encode(_png()).decode(), "mimeType": "image/png"}
    assert sent["parameters"] == {"aspectRatio": "9:16", "resolution": "720p",
                                  "durationSeconds": 8}
    assert _job_for(api, "1080p clip").body["parameters"]["resolution"] == "1080p"


async def test_failures_map_to_error_codes(tmp_path, database_url, world):
    api = world.add(KEY, job_seconds=0.1)
    async with gateway(tmp_path, database_url, [_channel(api)]) as gw:
        cases = {
            "filtered [moderation]": "moderation_blocked",   # RAI filter on the result
            "refused [refuse]": "moderation_blocked",        # 400 with Veo's RAI message
            "crashed [fail]": "upstream_error",              # operation error
            # a client asking for what Veo cannot do is failed, not quietly ignored
            "steps": "upstream_error",
        }
        ids = {}
        for prompt in cases:
            extra = {"metadata": {"num_inference_steps": 30}} if prompt == "steps" else {}
            ids[prompt] = (await gw.create(prompt=prompt, size="1280x720", seconds="4",
                                           **extra))["id"]
        for prompt, code in cases.items():
            done = await _finish(gw, ids[prompt])
            assert (done["status"], done["error"]["code"]) == ("failed", code), (prompt, done)
        steps = await gw.get(ids["steps"])
    assert "num_inference_steps" in steps["error"]["message"]
    assert "steps" not in {job.prompt for job in api.jobs.values()}
    assert "refused [refuse]" not in {job.prompt for job in api.jobs.values()}


async def test_transient_faults_never_fail_a_task(tmp_path, database_url, world):
    faults = Faults(seed=11, kinds={"download": DOWNLOAD_TRANSIENT}
                    ).everywhere(0.3, TRANSIENT)
    faults.script("submit", ["429", "garbage", "slow"]).script("poll", ["429", "reset"])
    faults.script("download", ["503"])
    api = world.add(KEY, faults=faults, job_seconds=0.2)
    async with gateway(tmp_path, database_url, [_channel(api)]) as gw:
        ids = [(await gw.create(prompt=f"flaky {i}", size="1280x720", seconds="4"))["id"]
               for i in range(8)]
        await await_for(gw.all_finished, timeout=120, interval=0.2, what="all tasks")
        rows = await gw.rows()
    assert {rows[i].status for i in ids} == {"completed"}
    assert {call for call, _ in faults.injected} == {"submit", "poll", "download"}
    assert {"429", "slow", "garbage"} <= {kind for _, kind in faults.injected}


async def test_retry_after_is_honoured_while_polling(tmp_path, database_url, world):
    faults = Faults(rates={"poll": 1.0}, kinds={"poll": ("429",)}, retry_after=1)
    api = world.add(KEY, faults=faults, job_seconds=0.1)
    async with gateway(tmp_path, database_url, [_channel(api)]) as gw:
        video = await gw.create(prompt="slow down", size="1280x720", seconds="4")

        async def polled_twice():
            polls = [r for r in api.log.requests if r.method == "GET"]
            return polls if len(polls) >= 3 else None

        polls = await await_for(polled_twice, timeout=30, what="three throttled polls")
        faults.off()
        done = await _finish(gw, video["id"])
    gaps = [b.at - a.at for a, b in zip(polls, polls[1:], strict=False)]
    assert min(gaps) >= 0.9, gaps  # the channel's own pace would be 0.05-0.3 s
    assert done["status"] == "completed"


async def test_cancel_ends_the_task_without_an_upstream_call(tmp_path, database_url, world):
    api = world.add(KEY)
    async with gateway(tmp_path, database_url, [_channel(api)]) as gw:
        video = await gw.create(prompt="forever [stuck]", size="1280x720", seconds="4")
        await await_for(lambda: _polled(api), timeout=30, what="a poll of the stuck job")
        r = await gw.client.delete(f"/v1/videos/{video['id']}", headers=gw.headers())
        assert r.status_code == 200
        await await_for(gw.all_finished, timeout=30, what="the cancel")
        row = (await gw.rows())[video["id"]]
    assert (row.status, row.error_code) == ("failed", "cancelled")
    # the Gemini API has no cancel: nothing but the submit and polls ever reached it
    assert {(r.method, r.path.split("/")[-2]) for r in api.log.requests} <= {
        ("POST", "models"), ("GET", "operations")}


async def _polled(api) -> bool:
    return any(r.method == "GET" for r in api.log.requests)


async def test_key_goes_only_to_the_api_origin(tmp_path, database_url, world):
    api = world.add(KEY)
    async with gateway(tmp_path, database_url, [_channel(api)]) as gw:
        ids = [(await gw.create(prompt=p, size="1280x720", seconds="4"))["id"]
               for p in ("direct", "moved [redirect]", "inline [inline]")]
        for video_id in ids:
            assert (await _finish(gw, video_id))["status"] == "completed"
            assert (await _stored(gw, video_id, tmp_path)).width == 1280
    downloads = [r for r in api.log.requests if "/files/" in r.path]
    assert len(downloads) == 2  # the inline video never needed one
    assert api.log.credentials() == {(KEY, None)}
    # the redirect's target, on another origin, got no credential at all
    assert len(world.storage_log.requests) == 1
    assert world.storage_log.credentials() == {(None, None)}


def test_channel_config_keeps_the_router_within_what_veo_makes(tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "k")

    def load(extra: str):
        path = tmp_path / "vidgate.yaml"
        path.write_text("channels:\n  - name: veo\n    kind: gemini\n"
                        "    api_key_env: GEMINI_API_KEY\n"
                        f"    models: {{sora-2: {MODEL}}}\n{extra}")
        return load_channels(path)

    (channel,) = load("")
    assert channel.base_url == "https://generativelanguage.googleapis.com/v1beta"
    assert channel.sizes == ["1280x720", "720x1280"] and channel.seconds == [4, 6, 8]
    for extra, words in [
        ("    sizes: [1920x1080]\n", "only as an 8-second clip"),
        ("    sizes: [1024x1024]\n", "not a Veo size"),
        ("    seconds: [5]\n", "not a Veo length"),
        ("    extra_fields: {durationSeconds: 4}\n", "set from the request"),
        ("    extra_fields: {seed: 1}\n", "not a parameter this API accepts"),
        ("    extra_fields: {sampleCount: 2}\n", "not supported"),
    ]:
        with pytest.raises(ConfigError, match=words):
            load(extra)
    (channel,) = load("    sizes: [1920x1080, 1080x1920]\n    seconds: [8]\n"
                      "    extra_fields: {negative_prompt: blur, personGeneration: allow_all}\n")
    assert channel.seconds == [8]
