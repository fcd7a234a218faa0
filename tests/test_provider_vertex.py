"""The `vertex` kind (Veo on Vertex AI) end to end: vidgate with a channel pointing at the fake
of tests/fakes/vertex.py, authenticated by google-auth against the fake's token endpoint with
a throwaway service-account key; google-genai drives the same fake first."""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path

import pytest
from PIL import Image

from fakes.faults import TRANSIENT, Faults
from fakes.gateway import FAST, gateway
from fakes.veo import veo_clips_fixture  # noqa: F401
from fakes.vertex import SCOPE, VertexWorld
from support import await_for
from vidgate.backends.veo import read_operation
from vidgate.backends.vertex import VIDEOS
from vidgate.channels import ChannelConfig, ConfigError, load_channels
from vidgate.media import probe as media

MODEL = "veo-3.1-generate-001"
PROJECT = "proj-1"


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 18), (20, 20, 200)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def world(veo_clips):
    world = VertexWorld(veo_clips)
    yield world
    world.close()


@pytest.fixture
def key_file(world, tmp_path) -> Path:
    return world.tokens.key_file(tmp_path, PROJECT)


def _channel(api, key_file: Path, name: str = "vertex", **overrides) -> ChannelConfig:
    fields = {"name": name, "kind": "vertex", "base_url": api.url, "project": PROJECT,
              "location": "us-central1", "credentials_file": str(key_file),
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


def test_google_genai_sdk_drives_the_fake(world, key_file, tmp_path):
    from google import genai
    from google.genai import types
    from google.oauth2 import service_account

    api = world.add(job_seconds=0.2)
    credentials = service_account.Credentials.from_service_account_file(
        str(key_file), scopes=[SCOPE])
    client = genai.Client(vertexai=True, project=PROJECT, location="us-central1",
                          credentials=credentials,
                          http_options=types.HttpOptions(base_url=api.origin, api_version="v1"))
    operation = client.models.generate_videos(
        model=MODEL,
        source=types.GenerateVideosSource(
            prompt="a blue kite", image=types.Image(image_bytes=_png(), mime_type="image/png")),
        config=types.GenerateVideosConfig(aspect_ratio="16:9", resolution="720p",
                                          duration_seconds=6, seed=7, generate_audio=True),
    )
    deadline = time.monotonic() + 30
    while not operation.done:
        assert time.monotonic() < deadline
        time.sleep(0.1)
        operation = client.operations.get(operation)
    path = tmp_path / "sdk.mp4"
    path.write_bytes(operation.result.generated_videos[0].video.video_bytes)
    info = media.probe(path)
    assert (info.width, info.height, round(info.duration)) == (1280, 720, 6)
    sent = _job_for(api, "a blue kite").body
    assert sent["parameters"] == {"aspectRatio": "16:9", "resolution": "720p",
                                  "durationSeconds": 6, "seed": 7, "generateAudio": True}
    assert sent["instances"][0]["image"] == {
        "bytesBase64Encoded": base64.b64encode(_png()).decode(), "mimeType": "image/png"}
    assert len(world.tokens.grants) == 1


async def test_text_and_image_to_video_with_exact_size_and_length(tmp_path, database_url,
                                                                 world, key_file):
    api = world.add()
    channels = [_channel(api, key_file, extra_fields={"generateAudio": True}),
                _channel(api, key_file, "vertex-1080", sizes=["1080x1920"], seconds=[8])]
    async with gateway(tmp_path, database_url, channels) as gw:
        text = await gw.create(prompt="text clip", size="1280x720", seconds="8", seed=42,
                               metadata={"negative_prompt": "rain"})
        image = await gw.create(prompt="image clip", size="720x1280", seconds="4",
                                input_reference={"image_url": "data:image/png;base64,"
                                                 + base64.b64encode(_png()).decode()})
        tall = await gw.create(prompt="1080p clip", size="1080x1920", seconds="8")
        results = {}
        for video in (text, image, tall):
            done = await _finish(gw, video["id"])
            assert done["status"] == "completed", (done.get("error"), done)
            info = await _stored(gw, video["id"], tmp_path)
            results[video["id"]] = (info.width, info.height, round(info.duration))
    assert results == {text["id"]: (1280, 720, 8), image["id"]: (720, 1280, 4),
                       tall["id"]: (1080, 1920, 8)}
    sent = _job_for(api, "text clip")
    assert sent.name.startswith(f"projects/{PROJECT}/locations/us-central1/publishers/google/"
                                f"models/{MODEL}/operations/")
    assert sent.body == {"instances": [{"prompt": "text clip"}], "parameters": {
        "generateAudio": True, "negativePrompt": "rain", "seed": 42, "aspectRatio": "16:9",
        "resolution": "720p", "durationSeconds": 8}}
    sent = _job_for(api, "image clip").body
    assert sent["instances"][0]["image"] == {
        "bytesBase64Encoded": base64.b64encode(_png()).decode(), "mimeType": "image/png"}
    assert sent["parameters"]["aspectRatio"] == "9:16"
    assert _job_for(api, "1080p clip").body["parameters"] == {
        "aspectRatio": "9:16", "resolution": "1080p", "durationSeconds": 8}
    # the bearer token went to the API only, and was one the token endpoint issued
    tokens = {r.authorization for r in api.log.requests}
    assert all(t and t.removeprefix("Bearer ") in world.tokens.tokens for t in tokens)
    assert world.tokens.log.credentials() == {(None, None)}


async def test_failures_map_to_error_codes(tmp_path, database_url, world, key_file):
    api = world.add(job_seconds=0.1)
    async with gateway(tmp_path, database_url, [_channel(api, key_file)]) as gw:
        cases = {"filtered [moderation]": "moderation_blocked",
                 "refused [refuse]": "moderation_blocked",
                 "crashed [fail]": "upstream_error"}
        ids = {p: (await gw.create(prompt=p, size="1280x720", seconds="4"))["id"]
               for p in cases}
        for prompt, code in cases.items():
            done = await _finish(gw, ids[prompt])
            assert (done["status"], done["error"]["code"]) == ("failed", code), (prompt, done)


def test_a_cloud_storage_result_fails_clearly():
    """Channels cannot ask for storageUri; should Veo still answer with gs://, the task fails
    with a message saying why instead of retrying a download it cannot make."""
    body = {"name": "projects/p/locations/l/publishers/google/models/m/operations/1",
            "done": True, "response": {"videos": [{"gcsUri": "gs://b/o.mp4",
                                                   "mimeType": "video/mp4"}]}}
    result = read_operation(body, VIDEOS)
    assert (result.state, result.error_code) == ("failed", "upstream_error")
    assert "storageUri" in result.error_message
    assert read_operation({"name": body["name"]}, VIDEOS).state == "in_progress"
    assert read_operation({"done": True}, VIDEOS).state == "unknown"


async def test_transient_faults_and_a_token_outage_never_fail_a_task(tmp_path, database_url,
                                                                      world, key_file):
    faults = Faults(seed=3).everywhere(
        0.3, TRANSIENT)
    faults.rates["submit"] = 0.5
    faults.script("submit", ["429", "garbage", "slow"]).script("poll", ["429", "reset"])
    api = world.add(faults=faults, job_seconds=0.2)
    world.tokens.outage = True
    async with gateway(tmp_path, database_url, [_channel(api, key_file)]) as gw:
        ids = [(await gw.create(prompt=f"flaky {i}", size="1280x720", seconds="4"))["id"]
               for i in range(8)]

        async def token_tried() -> bool:
            return len(world.tokens.log.requests) >= 2

        await await_for(token_tried, timeout=30, what="token requests during the outage")
        assert {(await gw.get(i))["status"] for i in ids} == {"queued"}
        assert not api.log.requests  # nothing is sent without a token
        world.tokens.outage = False
        await await_for(gw.all_finished, timeout=120, interval=0.2, what="all tasks")
        rows = await gw.rows()
    assert {rows[i].status for i in ids} == {"completed"}
    assert {call for call, _ in faults.injected} == {"submit", "poll"}
    assert {"429", "garbage", "slow"} <= {kind for _, kind in faults.injected}


@pytest.mark.parametrize(("expires_in", "renewed"), [(3600, False), (200, True)])
async def test_token_is_renewed_before_it_expires(tmp_path, database_url, veo_clips,
                                                  expires_in, renewed):
    """google-auth renews a token within a few minutes of its expiry: a 200 s token is
    renewed before every call, a one-hour token is minted once."""
    world = VertexWorld(veo_clips, expires_in=expires_in)
    try:
        api = world.add(job_seconds=0.3)
        key = world.tokens.key_file(tmp_path, PROJECT)
        async with gateway(tmp_path, database_url, [_channel(api, key)]) as gw:
            video = await gw.create(prompt="renew", size="1280x720", seconds="4")
            assert (await _finish(gw, video["id"]))["status"] == "completed"
        calls = len(api.log.requests)
        assert calls >= 3
        grants = len(world.tokens.grants)
        assert grants >= calls if renewed else grants == 1
    finally:
        world.close()


async def test_cancel_ends_the_task_without_an_upstream_call(tmp_path, database_url, world,
                                                             key_file):
    api = world.add()
    async with gateway(tmp_path, database_url, [_channel(api, key_file)]) as gw:
        video = await gw.create(prompt="forever [stuck]", size="1280x720", seconds="4")

        async def polled() -> bool:
            return any(r.path.endswith(":fetchPredictOperation") for r in api.log.requests)

        await await_for(polled, timeout=30, what="a poll of the stuck job")
        r = await gw.client.delete(f"/v1/videos/{video['id']}", headers=gw.headers())
        assert r.status_code == 200
        await await_for(gw.all_finished, timeout=30, what="the cancel")
        row = (await gw.rows())[video["id"]]
    assert (row.status, row.error_code) == ("failed", "cancelled")
    assert {r.path.rpartition(":")[2] for r in api.log.requests} == {
        "predictLongRunning", "fetchPredictOperation"}


def test_channel_config(tmp_path, monkeypatch, world, key_file):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)

    def load(extra: str):
        path = tmp_path / "vidgate.yaml"
        path.write_text(f"channels:\n  - name: vx\n    kind: vertex\n"
                        f"    models: {{sora-2: {MODEL}}}\n{extra}")
        return load_channels(path)

    full = f"    project: {PROJECT}\n    credentials_file: {key_file}\n"
    (channel,) = load(full + "    location: europe-west4\n")
    assert channel.base_url == "https://europe-west4-aiplatform.googleapis.com/v1"
    assert channel.sizes == ["1280x720", "720x1280"] and channel.seconds == [4, 6, 8]
    (channel,) = load(full + "    location: global\n")
    assert channel.base_url == "https://aiplatform.googleapis.com/v1"
    (channel,) = load(full + "    location: us-central1\n    base_url: http://127.0.0.1:9/v1\n"
                      "    extra_fields: {seed: 1, generate_audio: true}\n")
    assert channel.base_url == "http://127.0.0.1:9/v1"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    (channel,) = load(f"    project: {PROJECT}\n    location: us-central1\n")
    assert channel.service_account_file() == str(key_file)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    for extra, words in [
        (f"    credentials_file: {key_file}\n    location: us-central1\n",
         "'project': required"),
        (f"    project: p\n    credentials_file: {key_file}\n", "'location': required"),
        ("    project: p\n    location: us-central1\n", "GOOGLE_APPLICATION_CREDENTIALS"),
        ("    project: p\n    location: us-central1\n    credentials_file: /nope.json\n",
         "no such file"),
        (full + "    location: 'evil.com/x'\n", "location"),
        (full + "    location: us-central1\n    extra_fields: {storageUri: 'gs://b/'}\n",
         "not supported"),
        (full + "    location: us-central1\n    sizes: [1920x1080]\n", "8-second"),
    ]:
        with pytest.raises(ConfigError, match=words):
            load(extra)
