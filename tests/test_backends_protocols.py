"""Each protocol backend against its fake upstream, without the engine: what goes on the
wire (fields, model mapping, reference image form, extra fields), how answers are read, and
where the channel's key may go."""

from __future__ import annotations

import base64
import dataclasses
import io
import secrets

import pytest
from PIL import Image

from fakes.fixtures import fake_world_fixture, sample_media_fixture  # noqa: F401
from fakes.gateway import channel_for
from support import await_for
from vidgate.backends.base import (
    Job,
    ResultUnavailable,
    SubmitRefused,
    TransientError,
    UpstreamFailed,
)
from vidgate.backends.registry import make_backend
from vidgate.catalog import VideoRequest
from vidgate.channels import ChannelConfig

REQ = VideoRequest(model="sora-2", prompt="a lighthouse", width=1280, height=720, seconds=8,
                   metadata={"num_inference_steps": 12, "model": "evil", "secret": "x"})


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 9), (1, 2, 3)).save(buf, format="PNG")
    return buf.getvalue()


def _job(tmp_path, request=REQ, **kw) -> Job:
    """A job with a fresh task id (the id is the submit's idempotency key)."""
    return Job("video_" + secrets.token_hex(16), request, tmp_path / "work", **kw)


async def _until_done(backend, job):
    async def done():
        result = await backend.poll(job)
        return result if result.state in ("completed", "failed") else None

    return await await_for(done, timeout=10, interval=0.05)


@pytest.fixture
async def backends():
    made = []

    def make(config):
        backend = make_backend(config, None)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.close()


async def test_openai_multipart_submit_poll_fetch_cancel(tmp_path, fake_world, backends):
    up = fake_world.add("openai", key="sk-oa")
    backend = backends(channel_for(up, "oa", extra_fields={"negative_prompt": "blurry",
                                                           "num_inference_steps": 50}))
    job = _job(tmp_path, reference=_png())
    upstream_id = await backend.submit(job)
    sent = up.jobs[upstream_id]
    assert sent.fields["model"] == "oa-model" and sent.fields["seconds"] == "8"
    assert sent.fields["size"] == "1280x720" and sent.fields["prompt"] == "a lighthouse"
    # channel defaults, overridden by allowed metadata keys; other keys never travel
    assert sent.fields["negative_prompt"] == "blurry"
    assert sent.fields["num_inference_steps"] == "12"
    assert "secret" not in sent.fields
    assert sent.reference == _png()  # a real file part
    assert sent.idempotency_key == job.task_id

    job = dataclasses.replace(job, upstream_id=upstream_id)
    result = await _until_done(backend, job)
    assert result.state == "completed" and result.progress == 100
    files = await backend.fetch(job)
    assert files.video.read_bytes() == up.media.video.read_bytes()
    assert files.thumbnail and files.spritesheet
    await backend.cancel(job)
    assert up.cancels == [upstream_id]
    assert up.recorder.authorizations() == {"Bearer sk-oa"}


async def test_openai_remix_uses_the_upstream_id(tmp_path, fake_world, backends):
    up = fake_world.add("openai", key="sk-oa")
    backend = backends(channel_for(up, "oa"))
    source = await backend.submit(_job(tmp_path))
    remix_id = await backend.submit(_job(tmp_path, remix_of=source))
    assert up.jobs[remix_id].remix_of == source
    assert any(r.path == f"/v1/videos/{source}/remix" for r in up.recorder.requests)


async def test_openai_failures_map_to_codes(tmp_path, fake_world, backends):
    up = fake_world.add("openai", key="sk-oa", job_seconds=0.1)
    backend = backends(channel_for(up, "oa"))
    for tag, code in (("[moderation]", "moderation_blocked"), ("[fail]", "upstream_error")):
        request = dataclasses.replace(REQ, prompt=f"x {tag}")
        job = _job(tmp_path, request)
        job = dataclasses.replace(job, upstream_id=await backend.submit(job))
        result = await _until_done(backend, job)
        assert (result.state, result.error_code) == ("failed", code)


async def test_generations_json_data_url_and_envelopes(tmp_path, fake_world, backends):
    up = fake_world.add("generations", key="sk-gen")
    backend = backends(channel_for(up, "gen"))
    results = []
    for i in range(4):  # the fake alternates flat and envelope answers and URL places
        job = _job(tmp_path / str(i), reference=_png() if i == 0 else None)
        job = dataclasses.replace(job, upstream_id=await backend.submit(job))
        results.append((job, await _until_done(backend, job)))
    first = up.jobs[results[0][0].upstream_id]
    assert first.fields["model"] == "gen-model" and first.fields["duration"] == 8
    assert first.fields["size"] == "1280x720"
    assert first.fields["metadata"] == {"num_inference_steps": 12}
    assert first.fields["image"] == "data:image/png;base64," + base64.b64encode(_png()).decode()
    for job, result in results:
        assert result.state == "completed" and result.result_url, result
        files = await backend.fetch(dataclasses.replace(job, result_url=result.result_url))
        assert files.video.stat().st_size == up.media.video.stat().st_size


async def test_unified_create_and_query(tmp_path, fake_world, backends):
    up = fake_world.add("unified", key="sk-uni")
    backend = backends(channel_for(up, "uni"))
    job = _job(tmp_path, reference=_png())
    job = dataclasses.replace(job, upstream_id=await backend.submit(job))
    sent = up.jobs[job.upstream_id]
    assert sent.fields["aspect_ratio"] == "16:9" and sent.fields["duration"] == 8
    assert sent.fields["images"][0].startswith("data:image/png;base64,")
    assert sent.fields["num_inference_steps"] == 12
    result = await _until_done(backend, job)
    assert result.state == "completed" and result.result_url.startswith(up.origin)


async def test_key_never_leaves_the_channel_origin(tmp_path, fake_world, backends):
    up = fake_world.add("openai", key="sk-oa")
    backend = backends(channel_for(up, "oa"))
    for tag in ("[redirect]", "[foreign]"):
        job = _job(tmp_path / tag, dataclasses.replace(REQ, prompt=f"x {tag}"))
        job = dataclasses.replace(job, upstream_id=await backend.submit(job))
        result = await _until_done(backend, job)
        files = await backend.fetch(dataclasses.replace(job, result_url=result.result_url))
        assert files.video.stat().st_size > 0
    assert len(fake_world.files.recorder.requests) == 2
    assert fake_world.files.recorder.authorizations() == {None}


async def test_foreign_private_result_hosts_are_refused_by_default(tmp_path, fake_world,
                                                                   backends):
    up = fake_world.add("unified", key="sk-uni")
    backend = backends(channel_for(up, "uni", allow_private_result_urls=False))
    job = _job(tmp_path, dataclasses.replace(REQ, prompt="x [foreign]"))
    job = dataclasses.replace(job, upstream_id=await backend.submit(job))
    result = await _until_done(backend, job)
    with pytest.raises(ResultUnavailable, match="private address"):
        await backend.fetch(dataclasses.replace(job, result_url=result.result_url))
    assert not fake_world.files.recorder.requests


async def test_error_classes(tmp_path, fake_world, backends):
    up = fake_world.add("openai", key="sk-oa")
    backend = backends(channel_for(up, "oa"))
    up.refuse_submits = True
    with pytest.raises(SubmitRefused):
        await backend.submit(_job(tmp_path))
    up.refuse_submits = False
    with pytest.raises(UpstreamFailed):  # the fake rejects a non-numeric length with 400
        await backend.submit(_job(tmp_path, dataclasses.replace(REQ, seconds="x")))
    with pytest.raises(TransientError):  # unknown id while polling: a 404 flap
        await backend.poll(_job(tmp_path, upstream_id="video_missing"))
    expired = _job(tmp_path, dataclasses.replace(REQ, prompt="x [expired]"))
    expired = dataclasses.replace(expired, upstream_id=await backend.submit(expired))
    await _until_done(backend, expired)
    with pytest.raises(ResultUnavailable):
        await backend.fetch(expired)
    closed = backends(ChannelConfig(name="gone", kind="openai",
                                    base_url="http://127.0.0.1:9/v1",
                                    models={"sora-2": "m"}, connect_timeout_seconds=1))
    with pytest.raises(SubmitRefused):
        await closed.submit(_job(tmp_path))
    with pytest.raises(TransientError):
        await closed.poll(_job(tmp_path, upstream_id="x"))
