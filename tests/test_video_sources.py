"""Edits, extensions and characters against a live server (sandbox backend), with the
source given in each of the three forms clients use: JSON `{"video": {"id"}}`, the Node
SDK's multipart `video[id]`, and the Python SDK's file part (openai 3.57.0)."""

from __future__ import annotations

import av
import httpx
import numpy as np
import openai
import pytest

from support import wait_for
from vidgate.media.probe import probe

FORMS = ("json", "multipart_id", "sdk_file")


@pytest.fixture(scope="module")
def client(live_server):
    return openai.OpenAI(base_url=live_server.api, api_key=live_server.key, max_retries=0)


@pytest.fixture(scope="module")
def source(client, live_server, tmp_path_factory):
    """A completed 4 s video and its bytes."""
    video = client.videos.create_and_poll(prompt="a red fox in snow", size="720x720",
                                          seconds="4", poll_interval_ms=200)
    assert video.status == "completed", video
    path = tmp_path_factory.mktemp("source") / "source.mp4"
    path.write_bytes(client.videos.download_content(video.id).read())
    return video.id, path


def _post(live_server, form: str, path: str, fields: dict, source, key=None):
    """One request in `form`; the SDK form goes through the SDK itself."""
    video_id, file_path = source
    headers = live_server.headers(key)
    url = live_server.api + path
    if form == "json":
        return httpx.post(url, json={**fields, "video": {"id": video_id}}, headers=headers,
                          timeout=60)
    if form == "multipart_id":
        parts = {name: (None, str(value)) for name, value in fields.items()}
        parts["video[id]"] = (None, video_id)
        return httpx.post(url, files=parts, headers=headers, timeout=60)
    sdk = openai.OpenAI(base_url=live_server.api, api_key=key or live_server.key,
                        max_retries=0)
    call = sdk.videos.extend if path.endswith("extensions") else sdk.videos.edit
    with open(file_path, "rb") as f:
        return call(video=f, **fields)


def _created(answer) -> str:
    if isinstance(answer, httpx.Response):
        assert answer.status_code == 200, answer.text
        return answer.json()["id"]
    return answer.id


def _finish(client, video_id: str, tmp_path) -> tuple[dict, object]:
    def done():
        v = client.videos.retrieve(video_id)
        return v if v.status in ("completed", "failed") else None

    video = wait_for(done, timeout=180, interval=0.2, what=f"{video_id} to finish")
    assert video.status == "completed", video
    path = tmp_path / f"{video_id}.mp4"
    path.write_bytes(client.videos.download_content(video_id).read())
    return video, path


def _frames(path, before: float | None = None) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24").astype(np.float64)
                for f in container.decode(video=0)
                if before is None or float(f.time) < before]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


@pytest.mark.parametrize("form", FORMS)
def test_extend_4s_by_4s_is_one_8s_video_starting_with_the_source(
        form, client, live_server, source, tmp_path):
    answer = _post(live_server, form, "/videos/extensions",
                   {"prompt": "the fox runs on", "seconds": "8"}, source)
    video, path = _finish(client, _created(answer), tmp_path)
    assert video.seconds == "8" and video.size == "720x720"
    info = probe(path)
    assert abs(info.duration - 8) < 0.2 and info.has_audio
    head, original = _frames(path, before=4.0), _frames(source[1])
    assert len(head) == len(original)
    assert min(_psnr(a, b) for a, b in zip(head, original, strict=True)) > 30
    assert len(_frames(path)) > len(head) * 1.9  # the continuation decodes too


@pytest.mark.parametrize("form", FORMS)
def test_edit_keeps_size_and_length_and_differs(form, client, live_server, source,
                                                tmp_path):
    answer = _post(live_server, form, "/videos/edits", {"prompt": "as a negative"}, source)
    video, path = _finish(client, _created(answer), tmp_path)
    assert video.seconds == "4" and video.size == "720x720"
    info, original = probe(path), probe(source[1])
    assert (info.width, info.height) == (original.width, original.height)
    assert abs(info.duration - original.duration) < 0.2
    edited, frames = _frames(path), _frames(source[1])
    assert len(edited) == len(frames)
    assert max(_psnr(a, b) for a, b in zip(edited, frames, strict=True)) < 15


@pytest.mark.parametrize("form", ("json", "multipart_id"))
@pytest.mark.parametrize("path", ("/videos/extensions", "/videos/edits"))
def test_another_key_and_unknown_ids_get_404(form, path, live_server, source):
    other = live_server.new_key("stranger")
    fields = {"prompt": "mine now", "seconds": "8"}
    r = _post(live_server, form, path, fields, source, key=other)
    assert r.status_code == 404, r.text
    r = _post(live_server, form, path, fields, ("video_" + "0" * 32, source[1]))
    assert r.status_code == 404, r.text


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("seconds", ("4", "3", "21", "eight", ""))
def test_bad_total_seconds_is_a_400_naming_seconds(form, seconds, live_server, source):
    fields = {"prompt": "too short", "seconds": seconds}
    if form == "sdk_file":
        with pytest.raises(openai.BadRequestError) as caught:
            _post(live_server, form, "/videos/extensions", fields, source)
        assert caught.value.body["param"] == "seconds"
        return
    r = _post(live_server, form, "/videos/extensions", fields, source)
    assert r.status_code == 400 and r.json()["error"]["param"] == "seconds", r.text


@pytest.mark.parametrize("path", ("/videos/extensions", "/videos/edits",
                                  "/videos/characters"))
def test_a_file_that_is_not_a_video_is_a_400_naming_video(path, live_server):
    r = httpx.post(live_server.api + path, headers=live_server.headers(),
                   files={"prompt": (None, "x"), "name": (None, "x"), "seconds": (None, "8"),
                          "video": ("v.mp4", b"not a video at all", "video/mp4")})
    assert r.status_code == 400 and r.json()["error"]["param"] == "video", r.text


def test_character_round_trip_owner_scoped_and_used_in_a_create(client, live_server,
                                                                source, tmp_path):
    with open(source[1], "rb") as f:
        made = client.videos.create_character(name="Foxy", video=f)
    assert made.id.startswith("char_") and made.name == "Foxy" and made.created_at > 0
    got = client.videos.get_character(made.id)
    assert (got.id, got.name, got.created_at) == (made.id, made.name, made.created_at)
    other = openai.OpenAI(base_url=live_server.api, api_key=live_server.new_key("other"),
                          max_retries=0)
    with pytest.raises(openai.NotFoundError):
        other.videos.get_character(made.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.get_character("char_" + "0" * 32)
    # a prompt naming it starts from the clip's first frame
    video = client.videos.create_and_poll(prompt="foxy jumps over a fence", size="720x720",
                                          seconds="4", poll_interval_ms=200)
    _, path = _finish(client, video.id, tmp_path)
    first, clip_first = _frames(path)[0], _frames(source[1])[0]
    assert _psnr(first, clip_first) > 30
    plain = client.videos.create_and_poll(prompt="a fence alone", size="720x720",
                                          seconds="4", poll_interval_ms=200)
    _, plain_path = _finish(client, plain.id, tmp_path)
    assert _psnr(_frames(plain_path)[0], clip_first) < 25


def test_sdk_shapes_of_the_answers(client, source):
    """Create answers parse as the SDK's own models (every field of `Video`)."""
    with open(source[1], "rb") as f:
        video = client.videos.edit(prompt="check shape", video=f)
    assert isinstance(video, openai.types.Video)
    assert set(openai.types.Video.model_fields) <= set(video.model_dump(exclude_unset=True))
