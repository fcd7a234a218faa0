"""The `minimax` kind (Hailuo) end to end through vidgate against tests/fakes/minimax.py:
sizes and lengths of the stored file, the fields MiniMax receives, `base_resp` codes,
transient faults, the three-call result flow, and where the key goes; plus the official
MiniMax-MCP client driving the fake, so the fake is checked against MiniMax's own code."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io

import orjson
import pytest
from minimax_mcp.client import MinimaxAPIClient
from minimax_mcp.exceptions import MinimaxAuthError, MinimaxRequestError
from PIL import Image

from fakes.faults import DOWNLOAD_TRANSIENT, TRANSIENT, Faults
from fakes.gateway import gateway
from fakes.minimax import KEY, FakeMiniMax, MiniMaxWorld, minimax_channel
from fakes.sized import SizedVideos
from support import await_for
from vidgate import catalog
from vidgate.backends.base import PollResult, SubmitRefused, UpstreamFailed
from vidgate.backends.http.client import UpstreamResponse
from vidgate.backends.minimax import accepted, read_task
from vidgate.channels import ConfigError, load_channels
from vidgate.media.probe import probe


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> SizedVideos:
    return SizedVideos(tmp_path_factory.mktemp("minimax-videos"))


@pytest.fixture
def world(videos, monkeypatch):
    # The built-in catalog has neither Hailuo's 768P size nor its 6 s length; until catalogs
    # are declarable, the tests give sora-2 both (what an operator's catalog would do).
    sora = catalog.DEFAULT_MODELS["sora-2"]
    monkeypatch.setitem(catalog.DEFAULT_MODELS, "sora-2", dataclasses.replace(
        sora, sizes=(*sora.sizes, "1366x768"), seconds=(*sora.seconds, 6)))
    fakes = MiniMaxWorld(videos)
    yield fakes
    fakes.close()


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (20, 90, 200)).save(buf, format="PNG")
    return buf.getvalue()


async def _finish(gw, video_id: str, timeout: float = 30) -> dict:
    async def done():
        video = await gw.get(video_id)
        return video if video["status"] in ("completed", "failed") else None

    return await await_for(done, timeout=timeout, interval=0.05, what=f"{video_id} to end")


async def _stored(gw, video_id: str):
    r = await gw.client.get(f"/v1/videos/{video_id}/content", headers=gw.headers())
    assert r.status_code == 200
    path = gw.app.services.settings.data_dir / "probe.mp4"
    path.write_bytes(r.content)
    return probe(path)


def _key_stayed_home(fake: FakeMiniMax, files) -> None:
    assert fake.recorder.authorizations() == {f"Bearer {KEY}"}
    assert files.recorder.requests, "the result was never downloaded from the CDN"
    assert files.recorder.authorizations() == {None}


async def test_text_to_video_768p_for_10_seconds(tmp_path, database_url, world):
    fake = world.add()
    async with gateway(tmp_path, database_url, [minimax_channel(fake)]) as gw:
        video = await gw.create(model="sora-2", prompt="a paper boat in the rain",
                                size="1366x768", seconds="10",
                                metadata={"prompt_optimizer": False})
        assert (await _finish(gw, video["id"]))["status"] == "completed"
        info = await _stored(gw, video["id"])
    assert (info.width, info.height, round(info.duration)) == (1366, 768, 10)
    sent = fake.creates[0]
    assert sent["model"] == "MiniMax-Hailuo-02" and sent["prompt"] == "a paper boat in the rain"
    assert sent["duration"] == 10 and sent["resolution"] == "768P"
    assert sent["prompt_optimizer"] is False and sent["first_frame_image"] is None
    assert fake.retrieves >= 1  # the URL came from /v1/files/retrieve
    _key_stayed_home(fake, world.files)


async def test_image_to_video_1080p_crops_the_first_frame(tmp_path, database_url, world):
    fake = world.add()
    hd = minimax_channel(fake, sizes=["1920x1080"], seconds=[6])
    image = "data:image/png;base64," + base64.b64encode(_png(600, 900)).decode()  # portrait
    async with gateway(tmp_path, database_url, [hd]) as gw:
        video = await gw.create(model="sora-2", prompt="she turns around", size="1920x1080",
                                seconds="6", input_reference={"image_url": image})
        assert (await _finish(gw, video["id"]))["status"] == "completed"
        info = await _stored(gw, video["id"])
    assert (info.width, info.height, round(info.duration)) == (1920, 1080, 6)
    sent = fake.creates[0]
    # a portrait frame as it was would have made a portrait video: cropped to 16:9
    assert sent["first_frame_image"] == (592, 333)  # the largest exact 16:9 crop (37 x 16:9)
    assert sent["resolution"] == "1080P" and sent["duration"] == 6
    _key_stayed_home(fake, world.files)


@pytest.mark.parametrize(("tag", "code"), [("[fail]", "upstream_error"),
                                           ("[moderation]", "moderation_blocked"),
                                           ("[blocked]", "moderation_blocked")])
async def test_failure_and_content_refusal_codes(tmp_path, database_url, world, tag, code):
    fake = world.add()
    async with gateway(tmp_path, database_url, [minimax_channel(fake)]) as gw:
        video = await gw.create(model="sora-2", prompt=f"a scene {tag}", size="1366x768",
                                seconds="6")
        done = await _finish(gw, video["id"])
    assert done["status"] == "failed" and done["error"]["code"] == code


async def test_transient_faults_never_fail_a_task(tmp_path, database_url, world):
    faults = Faults(seed=11, kinds={"submit": TRANSIENT, "poll": TRANSIENT},
                    rates={"submit": 0.5, "poll": 0.5})
    fake = world.add(faults=faults)
    world.files.faults.kinds["download"] = DOWNLOAD_TRANSIENT
    world.files.faults.rates["download"] = 0.5
    faults.script("submit", ["503"]).script("poll", ["503"])
    world.files.faults.script("download", ["503"])
    async with gateway(tmp_path, database_url, [minimax_channel(fake)]) as gw:
        ids = [(await gw.create(model="sora-2", prompt=f"gale {i}", size="1366x768",
                                seconds="6"))["id"] for i in range(6)]
        ends = [await _finish(gw, i, timeout=90) for i in ids]
    assert [e["status"] for e in ends] == ["completed"] * 6
    assert {call for call, _ in fake.faults.injected} == {"submit", "poll"}
    assert world.files.faults.injected
    _key_stayed_home(fake, world.files)


async def test_cancel_is_a_no_op_minimax_has_none(tmp_path, database_url, world):
    fake = world.add()
    async with gateway(tmp_path, database_url, [minimax_channel(fake)]) as gw:
        video = await gw.create(model="sora-2", prompt="forever [stuck]", size="1366x768",
                                seconds="6")

        async def bound() -> bool:
            return bool((await gw.rows())[video["id"]].upstream_id)

        await await_for(bound, what="the task to reach MiniMax")
        r = await gw.client.delete(f"/v1/videos/{video['id']}", headers=gw.headers())
        assert r.status_code == 200
        await await_for(gw.all_finished, what="the cancel to end the task")
        row = (await gw.rows())[video["id"]]
    assert (row.status, row.error_code) == ("failed", "cancelled")
    assert {r.method for r in fake.recorder.requests} <= {"GET", "POST"}


async def test_the_official_client_drives_the_fake(world):
    """MiniMax-MCP's own client: create, query until Success, retrieve the download URL."""
    fake = world.add()

    def run() -> tuple[str, str]:
        client = MinimaxAPIClient(KEY, fake.origin)
        task_id = client.post("/v1/video_generation", json={
            "model": "MiniMax-Hailuo-02", "prompt": "a fox", "duration": 6,
            "resolution": "768P"})["task_id"]
        while (status := client.get(f"/v1/query/video_generation?task_id={task_id}"))[
                "status"] != "Success":
            assert status["status"] in ("Preparing", "Queueing", "Processing")
        assert (status["video_width"], status["video_height"]) == (1366, 768)
        file = client.get(f"/v1/files/retrieve?file_id={status['file_id']}")
        with pytest.raises(MinimaxAuthError):
            MinimaxAPIClient("wrong-key", fake.origin).get("/v1/query/video_generation"
                                                           f"?task_id={task_id}")
        with pytest.raises(MinimaxRequestError, match="2013"):
            client.post("/v1/video_generation", json={
                "model": "MiniMax-Hailuo-02", "prompt": "x", "duration": 10,
                "resolution": "1080P"})
        return task_id, file["file"]["download_url"]

    task_id, url = await asyncio.to_thread(run)
    assert url.startswith(world.files.url) and task_id in url


def _response(status: int, body: object) -> UpstreamResponse:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return UpstreamResponse(status, {"retry-after": "3"}, raw)


@pytest.mark.parametrize(("status", "code", "error"), [
    (200, 1026, "moderation_blocked"), (200, 2013, "upstream_error"),
    (200, 1999, "upstream_error"), (400, 2013, "upstream_error"),
    (200, 1002, None), (200, 1004, None), (200, 1008, None), (200, 1000, None),
    (200, 1001, None), (200, 2049, None), (500, 1000, None), (429, 1002, None),
])
def test_create_error_codes(status, code, error):
    response = _response(status, {"task_id": "", "base_resp": {"status_code": code,
                                                               "status_msg": "m"}})
    if error is None:
        with pytest.raises(SubmitRefused):
            accepted(response)
    else:
        with pytest.raises(UpstreamFailed) as failed:
            accepted(response)
        assert failed.value.code == error


def test_garbage_create_answers_are_refusals():
    for body in (b"<html>proxy</html>", {"task_id": "1"}):
        with pytest.raises(SubmitRefused):
            accepted(_response(200, body))


def test_read_task_states():
    ok = {"status_code": 0, "status_msg": "success"}
    assert read_task({"status": "Preparing", "base_resp": ok}).state == "queued"
    assert read_task({"status": "Queueing", "base_resp": ok}).state == "queued"
    assert read_task({"status": "Processing", "base_resp": ok}).state == "in_progress"
    assert read_task({"status": "Success", "file_id": "1", "base_resp": ok}) == \
        PollResult("completed", 100)
    assert read_task({"status": "Mulling", "base_resp": ok}).state == "unknown"
    blocked = read_task({"status": "Fail", "base_resp": {"status_code": 1027,
                                                         "status_msg": "output sensitive"}})
    assert (blocked.state, blocked.error_code) == ("failed", "moderation_blocked")


def test_config_defaults_and_the_1080p_length_rule(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIMAX_API_KEY", KEY)
    path = tmp_path / "vidgate.yaml"

    def load(extra: str):
        path.write_text("channels:\n  - name: hailuo\n    kind: minimax\n"
                        "    models: {sora-2: MiniMax-Hailuo-02}\n" + extra)
        return load_channels(path)

    channel = load("    api_key_env: MINIMAX_API_KEY\n")[0]
    assert channel.base_url == "https://api.minimax.io"
    assert channel.sizes == ["1366x768"] and channel.seconds == [6, 10]
    hd = load("    api_key_env: MINIMAX_API_KEY\n    base_url: https://api.minimaxi.com\n"
              "    sizes: [1920x1080]\n    seconds: [6]\n")[0]
    assert hd.sizes == ["1920x1080"]
    with pytest.raises(ConfigError, match="1920x1080 comes only in 6 s"):
        load("    api_key_env: MINIMAX_API_KEY\n    sizes: [1366x768, 1920x1080]\n")
    with pytest.raises(ConfigError, match="cannot produce 1280x720"):
        load("    api_key_env: MINIMAX_API_KEY\n    sizes: [1280x720]\n")
    with pytest.raises(ConfigError, match="api_key_env"):
        load("")
