"""The official `openai` SDK against a live vidgate server (sandbox backend)."""

from __future__ import annotations

import io
import warnings

import av
import openai
import pytest
from PIL import Image

from vidgate.media.probe import MediaInfo, probe

warnings.filterwarnings("ignore", category=DeprecationWarning)


@pytest.fixture(scope="module")
def client(live_server):
    return openai.OpenAI(base_url=live_server.api, api_key=live_server.key, max_retries=0)


def _probe(data: bytes, tmp_path, name="v.mp4") -> MediaInfo:
    path = tmp_path / name
    path.write_bytes(data)
    return probe(path)


def test_create_and_poll_then_download_all_variants(client, tmp_path):
    video = client.videos.create_and_poll(
        model="sora-2", prompt="A cat playing piano in a jazz club", size="1280x720",
        seconds="4", poll_interval_ms=200,
    )
    assert video.status == "completed", video
    assert video.progress == 100
    assert video.size == "1280x720" and video.seconds == "4"
    assert video.completed_at is not None and video.expires_at > video.completed_at
    extra = video.model_extra or {}
    assert extra["url"] == extra["video_url"] and extra["url"].startswith("http://127.0.0.1")
    assert extra["thumbnail_url"]

    data = client.videos.download_content(video.id, variant="video").read()
    info = _probe(data, tmp_path)
    assert (info.width, info.height) == (1280, 720)
    assert abs(info.duration - 4) < 0.15
    assert info.has_audio

    thumb = Image.open(io.BytesIO(client.videos.download_content(video.id,
                                                                 variant="thumbnail").read()))
    assert thumb.format == "WEBP"
    assert abs(thumb.width / thumb.height - 16 / 9) < 0.02
    sprite = Image.open(io.BytesIO(client.videos.download_content(video.id,
                                                                  variant="spritesheet").read()))
    assert sprite.format == "JPEG"
    sprite.load()


def test_list_auto_paging_walks_25_in_order(live_server):
    client = openai.OpenAI(base_url=live_server.api, api_key=live_server.new_key("lister"),
                           max_retries=0)
    created = [client.videos.create(prompt=f"list item {i}", size="720x720").id
               for i in range(25)]
    walked = [v.id for v in client.videos.list(limit=7)]
    assert walked == list(reversed(created))
    ascending = [v.id for v in client.videos.list(limit=10, order="asc")]
    assert ascending == created
    first_page = client.videos.list(limit=5)
    assert len(first_page.data) == 5 and first_page.has_more
    for vid in created:  # cancel them so they do not keep the renderer busy
        assert client.videos.delete(vid).deleted


def test_delete_then_not_found(client):
    video = client.videos.create(prompt="to be deleted", size="720x720")
    deleted = client.videos.delete(video.id)
    assert deleted.id == video.id and deleted.deleted and deleted.object == "video.deleted"
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve(video.id)
    with pytest.raises(openai.NotFoundError):
        client.videos.delete(video.id)


def test_remix_of_completed_video(client, tmp_path):
    source = client.videos.create_and_poll(prompt="a red fox in snow", size="720x720",
                                           poll_interval_ms=200)
    assert source.status == "completed"
    remix = client.videos.remix(source.id, prompt="the same fox at night")
    assert remix.remixed_from_video_id == source.id
    assert remix.prompt == "the same fox at night"
    done = client.videos.poll(remix.id, poll_interval_ms=200)
    assert done.status == "completed"
    info = _probe(client.videos.download_content(done.id).read(), tmp_path)
    assert (info.width, info.height) == (720, 720)


def test_multipart_input_reference_becomes_first_frame(client, tmp_path):
    image = Image.new("RGB", (720, 1280), (250, 30, 30))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    video = client.videos.create_and_poll(
        prompt="animate this", input_reference=("ref.png", buf.getvalue(), "image/png"),
        poll_interval_ms=200,
    )
    assert video.status == "completed", video
    assert video.size == "720x1280"  # the /v1/videos family default, as OpenAI's
    path = tmp_path / "ref.mp4"
    path.write_bytes(client.videos.download_content(video.id).read())
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0)).to_image()
    r, g, b = frame.resize((32, 32)).getpixel((16, 16))
    assert r > 180 and g < 90 and b < 90, (r, g, b)


def test_sdk_errors(live_server, client):
    bad = openai.OpenAI(base_url=live_server.api, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.videos.list()
    with pytest.raises(openai.NotFoundError):
        client.videos.retrieve("video_" + "f" * 32)
    with pytest.raises(openai.BadRequestError) as err:
        client.videos.create(prompt="x", size="123x45")
    assert err.value.body["param"] == "size"
