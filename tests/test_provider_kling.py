"""The `kling` kind end to end through vidgate against tests/fakes/kling.py: sizes and
lengths of the stored file, the fields Kling receives, error codes, transient faults, the
JWT (verified by the fake and renewed across a long task), and where credentials go."""

from __future__ import annotations

import base64
import io
import secrets
import time

import httpx
import jwt
import pytest
from PIL import Image

from fakes.faults import DOWNLOAD_TRANSIENT, TRANSIENT, Faults
from fakes.gateway import gateway
from fakes.kling import ACCESS, SECRET, FakeKling, KlingWorld, kling_channel
from fakes.sized import SizedVideos
from fakes.upstream import FileHost
from support import await_for
from vidgate.backends import kling
from vidgate.backends.base import Job, PollResult, SubmitRefused, UpstreamFailed
from vidgate.backends.http.client import UpstreamResponse
from vidgate.backends.kling import KlingBackend, KlingToken, accepted, read_task
from vidgate.catalog import VideoRequest
from vidgate.channels import ChannelConfig, ConfigError, load_channels
from vidgate.media.probe import probe


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> SizedVideos:
    return SizedVideos(tmp_path_factory.mktemp("kling-videos"))


@pytest.fixture
def world(videos):
    fakes = KlingWorld(videos, ACCESS, SECRET)
    yield fakes.add, fakes.files
    fakes.close()


def channel(fake: FakeKling, name: str = "kling", **overrides) -> ChannelConfig:
    return kling_channel(fake, name, **overrides)


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 30)).save(buf, format="PNG")
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


def _credentials_stayed_home(fake: FakeKling, files: FileHost) -> None:
    """Every API call carried a JWT the fake accepted; the CDN never saw one."""
    assert fake.recorder.requests and not fake.rejected
    assert all((r.authorization or "").startswith("Bearer ey") for r in fake.recorder.requests)
    assert files.recorder.requests, "the result was never downloaded from the CDN"
    assert files.recorder.authorizations() == {None}


async def test_text_to_video_std_makes_720p_for_5_seconds(tmp_path, database_url, world):
    add, files = world
    fake = add()
    async with gateway(tmp_path, database_url, [channel(fake)]) as gw:
        video = await gw.create(model="sora-2", prompt="a lighthouse at dusk",
                                size="720x1280", seconds="5",
                                metadata={"negative_prompt": "blurry", "cfg_scale": 0.6})
        assert (await _finish(gw, video["id"]))["status"] == "completed"
        info = await _stored(gw, video["id"])
        row = (await gw.rows())[video["id"]]
    assert (info.width, info.height, round(info.duration)) == (720, 1280, 5)
    sent = fake.creates[0]
    assert sent["model_name"] == "kling-v2-6" and sent["prompt"] == "a lighthouse at dusk"
    assert sent["mode"] == "std" and sent["duration"] == "5" and sent["aspect_ratio"] == "9:16"
    assert sent["negative_prompt"] == "blurry" and sent["cfg_scale"] == 0.6
    assert "callback_url" not in sent and sent["image"] is None
    assert row.upstream_id.startswith("text2video:")
    # the token is the docs' token: iss = access key, 30 minutes from 5 s ago
    claims = fake.claims[0]
    assert claims["iss"] == ACCESS and claims["exp"] - claims["nbf"] == 1805
    assert abs(claims["nbf"] - (time.time() - 5)) < 60
    _credentials_stayed_home(fake, files)


async def test_image_to_video_pro_crops_the_frame_to_the_requested_shape(
        tmp_path, database_url, world):
    add, files = world
    fake = add()
    pro = channel(fake, extra_fields={"mode": "pro"})
    assert pro.sizes == ["1920x1080", "1080x1920", "1080x1080"]  # the pro mode's defaults
    image = "data:image/png;base64," + base64.b64encode(_png(800, 600)).decode()  # 4:3
    async with gateway(tmp_path, database_url, [pro]) as gw:
        video = await gw.create(model="sora-2", prompt="the girl smiles", size="1920x1080",
                                seconds="10", input_reference={"image_url": image})
        assert (await _finish(gw, video["id"]))["status"] == "completed"
        info = await _stored(gw, video["id"])
        row = (await gw.rows())[video["id"]]
    assert (info.width, info.height, round(info.duration)) == (1920, 1080, 10)
    sent = fake.creates[0]
    # a 4:3 frame as it was would have come back square: it was cropped to 16:9
    assert sent["image"] == (800, 450)
    assert sent["mode"] == "pro" and sent["duration"] == "10" and "aspect_ratio" not in sent
    assert row.upstream_id.startswith("image2video:")
    _credentials_stayed_home(fake, files)


@pytest.mark.parametrize(("tag", "code"), [("[fail]", "upstream_error"),
                                           ("[moderation]", "moderation_blocked")])
async def test_failure_and_content_refusal_codes(tmp_path, database_url, world, tag, code):
    add, _ = world
    fake = add()
    async with gateway(tmp_path, database_url, [channel(fake)]) as gw:
        video = await gw.create(model="sora-2", prompt=f"a scene {tag}", size="1280x720",
                                seconds="5")
        done = await _finish(gw, video["id"])
    assert done["status"] == "failed" and done["error"]["code"] == code


async def test_transient_faults_never_fail_a_task(tmp_path, database_url, world):
    add, files = world
    faults = Faults(seed=11, kinds={"submit": TRANSIENT, "poll": TRANSIENT},
                    rates={"submit": 0.5, "poll": 0.5})
    fake = add(faults=faults)
    files.faults.kinds["download"] = DOWNLOAD_TRANSIENT
    files.faults.rates["download"] = 0.5
    faults.script("submit", ["503"]).script("poll", ["503"])
    files.faults.script("download", ["503"])
    async with gateway(tmp_path, database_url, [channel(fake)]) as gw:
        ids = [(await gw.create(model="sora-2", prompt=f"storm {i}", size="1280x720",
                                seconds="5"))["id"] for i in range(6)]
        ends = [await _finish(gw, i, timeout=90) for i in ids]
    assert [e["status"] for e in ends] == ["completed"] * 6
    calls = {call for call, _ in fake.faults.injected}
    assert calls == {"submit", "poll"} and files.faults.injected
    _credentials_stayed_home(fake, files)


async def test_the_jwt_is_renewed_across_a_long_task(tmp_path, database_url, world,
                                                     monkeypatch):
    """Tokens of 3 s, renewed 1 s before they expire, over a 7 s task: the fake (which
    rejects expired tokens) never refuses one, and it saw several."""
    monkeypatch.setattr(kling, "TOKEN_SECONDS", 3)
    monkeypatch.setattr(kling, "RENEW_MARGIN", 1)
    add, files = world
    fake = add(job_seconds=7)
    async with gateway(tmp_path, database_url, [channel(fake)]) as gw:
        video = await gw.create(model="sora-2", prompt="a slow sunrise", size="1280x720",
                                seconds="5")
        assert (await _finish(gw, video["id"]))["status"] == "completed"
    assert len({c["exp"] for c in fake.claims}) >= 3
    assert all(c["exp"] - c["nbf"] == 8 for c in fake.claims)
    _credentials_stayed_home(fake, files)


async def test_the_fake_rejects_bad_and_expired_tokens(world):
    add, _ = world
    fake = add()
    url = f"{fake.origin}/v1/videos/text2video/1"
    now = int(time.time())

    def token(secret: str = SECRET, **claims) -> str:
        payload = {"iss": ACCESS, "exp": now + 1800, "nbf": now - 5, **claims}
        return jwt.encode(payload, secret, algorithm="HS256",
                          headers={"alg": "HS256", "typ": "JWT"})

    async with httpx.AsyncClient() as client:
        async def code(auth: str | None) -> int:
            r = await client.get(url, headers={"Authorization": auth} if auth else {})
            return r.json()["code"] if r.status_code == 401 else 0

        assert await code(None) == 1001
        assert await code(f"Bearer {token(exp=now - 1)}") == 1004
        assert await code(f"Bearer {token(nbf=now + 60)}") == 1003
        assert await code(f"Bearer {token(secret='wrong-secret-key-of-32-bytes-or-more')}") == 1002
        assert await code(f"Bearer {token(iss='someone-else')}") == 1002
        assert await code(f"Bearer {token()}") == 0


async def test_token_renews_by_the_clock_before_it_expires():
    now = [1_000_000.0]
    creds = KlingToken(ACCESS, SECRET, clock=lambda: now[0])
    first = (await creds.headers())["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(first, SECRET, algorithms=["HS256"], issuer=ACCESS,
                        options={"verify_exp": False, "verify_nbf": False})
    assert claims == {"iss": ACCESS, "exp": 1_001_800, "nbf": 999_995}
    assert jwt.get_unverified_header(first) == {"alg": "HS256", "typ": "JWT"}
    now[0] += 1800 - 301  # still more than the margin left: the same token
    assert (await creds.headers())["Authorization"] == f"Bearer {first}"
    now[0] += 2  # inside the margin: a new one, valid for 30 minutes from now
    second = (await creds.headers())["Authorization"].removeprefix("Bearer ")
    assert second != first
    assert jwt.decode(second, SECRET, algorithms=["HS256"],
                      options={"verify_exp": False, "verify_nbf": False})["exp"] == \
        int(now[0]) + 1800


async def test_cancel_is_a_no_op_kling_has_none(tmp_path, database_url, world):
    add, _ = world
    fake = add()
    async with gateway(tmp_path, database_url, [channel(fake)]) as gw:
        video = await gw.create(model="sora-2", prompt="forever [stuck]", size="1280x720",
                                seconds="5")
        await await_for(lambda: _bound(gw, video["id"]), what="the task to reach Kling")
        r = await gw.client.delete(f"/v1/videos/{video['id']}", headers=gw.headers())
        assert r.status_code == 200
        await await_for(gw.all_finished, what="the cancel to end the task")
        row = (await gw.rows())[video["id"]]
    assert (row.status, row.error_code) == ("failed", "cancelled")
    assert {r.method for r in fake.recorder.requests} <= {"GET", "POST"}


async def _bound(gw, video_id: str) -> bool:
    return bool((await gw.rows())[video_id].upstream_id)


def _response(status: int, body: object, headers: dict | None = None) -> UpstreamResponse:
    raw = body if isinstance(body, bytes) else __import__("orjson").dumps(body)
    return UpstreamResponse(status, headers or {}, raw)


@pytest.mark.parametrize(("status", "code", "error"), [
    (400, 1301, "moderation_blocked"), (400, 1201, "upstream_error"),
    (400, 1300, "upstream_error"), (401, 1004, None), (429, 1102, None), (429, 1303, None),
    (429, 1302, None), (403, 1103, None), (500, 5000, None), (503, 5001, None),
    (200, 1303, None),
])
def test_create_error_codes(status, code, error):
    response = _response(status, {"code": code, "message": "m", "request_id": "r",
                                  "data": None}, {"retry-after": "7"})
    if error is None:
        with pytest.raises(SubmitRefused) as refused:
            accepted(response)
        assert refused.value.retry_after == 7
    else:
        with pytest.raises(UpstreamFailed) as failed:
            accepted(response)
        assert failed.value.code == error


def test_garbage_create_answer_is_a_refusal():
    with pytest.raises(SubmitRefused):
        accepted(_response(200, b"<html>proxy</html>"))


def test_read_task_reads_a_callback_body_as_a_query():
    callback = {"task_id": "1", "task_status": "succeed", "task_status_msg": "",
                "task_info": {}, "created_at": 1, "updated_at": 2,
                "task_result": {"videos": [{"id": "v", "url": "https://cdn.example/v.mp4",
                                            "duration": "5.0"}]}}
    assert read_task(callback) == read_task({"code": 0, "message": "", "data": callback})
    assert read_task(callback) == PollResult("completed", 100,
                                             result_url="https://cdn.example/v.mp4")
    assert read_task({**callback, "task_status": "processing"}).state == "in_progress"
    assert read_task({**callback, "task_status": "submitted"}).state == "queued"
    assert read_task({**callback, "task_status": "brewing"}).state == "unknown"
    failed = read_task({**callback, "task_status": "failed",
                        "task_status_msg": "Trigger the content security policy"})
    assert failed.error_code == "moderation_blocked"


async def test_callback_url_reaches_kling_when_given(tmp_path, world):
    add, _ = world
    fake = add()
    backend = KlingBackend(channel(fake))
    try:
        job = Job("video_" + secrets.token_hex(8),
                  VideoRequest(model="sora-2", prompt="hook", width=1280, height=720,
                               seconds=10), tmp_path, callback_url="https://vidgate.example/cb/x")
        upstream = await backend.submit(job)
    finally:
        await backend.close()
    assert upstream.startswith("text2video:")
    assert fake.creates[0]["callback_url"] == "https://vidgate.example/cb/x"
    assert fake.creates[0]["duration"] == "10"


def test_config_load_checks_mode_sizes_and_the_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("KLING_AK", ACCESS)
    monkeypatch.setenv("KLING_SK", SECRET)
    path = tmp_path / "vidgate.yaml"

    def load(extra: str) -> list[ChannelConfig]:
        path.write_text("channels:\n  - name: kling\n    kind: kling\n"
                        "    api_key_env: KLING_AK\n    models: {sora-2: kling-v2-6}\n" + extra)
        return load_channels(path)

    good = load("    secret_key_env: KLING_SK\n    extra_fields: {mode: pro}\n")[0]
    assert good.base_url == "https://api-singapore.klingai.com"
    assert good.sizes == ["1920x1080", "1080x1920", "1080x1080"] and good.seconds == [5, 10]
    with pytest.raises(ConfigError, match="secret_key_env"):
        load("")
    with pytest.raises(ConfigError, match="1280x720 cannot be produced with mode 'pro'"):
        load("    secret_key_env: KLING_SK\n    extra_fields: {mode: pro}\n"
             "    sizes: [1280x720]\n")
    with pytest.raises(ConfigError, match="1280x720 comes only in 5, 10 s"):
        load("    secret_key_env: KLING_SK\n    seconds: [5, 8]\n")
    with pytest.raises(ConfigError, match="extra_fields.mode"):
        load("    secret_key_env: KLING_SK\n    extra_fields: {mode: turbo}\n")
