"""Chaining: vidgate in front of a second vidgate (a live server on the sandbox), through each
of the three protocol kinds, end to end: create, poll, mirror, download, remix."""

from __future__ import annotations

import io
import os

import av
import pytest
from PIL import Image

from fakes.gateway import gateway
from support import await_for
from vidgate.channels import ChannelConfig
from vidgate.media.probe import probe

KINDS = ("openai", "generations", "unified")


def _red_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (720, 720), (250, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _channel(kind: str, inner) -> ChannelConfig:
    os.environ["VG_INNER_KEY"] = inner.key
    return ChannelConfig(
        name=f"inner-{kind}", kind=kind, base_url=inner.api, api_key_env="VG_INNER_KEY",
        models={"sora-2": "sora-2"}, poll_min_seconds=0.2, poll_max_seconds=1.0,
    )


async def _finish(gw, video_id: str) -> dict:
    async def done():
        v = await gw.get(video_id)
        return v if v["status"] in ("completed", "failed") else None

    return await await_for(done, timeout=120, interval=0.2, what=f"{video_id} to finish")


async def _download(gw, video_id: str, tmp_path, variant: str = "video") -> bytes:
    r = await gw.client.get(f"/v1/videos/{video_id}/content", params={"variant": variant},
                            headers=gw.headers())
    assert r.status_code == 200, r.text
    return r.content


@pytest.mark.parametrize("kind", KINDS)
async def test_chain_through_each_kind(kind, live_server, tmp_path, database_url):
    import base64

    image = "data:image/png;base64," + base64.b64encode(_red_png()).decode()
    async with gateway(tmp_path, database_url, [_channel(kind, live_server)]) as gw:
        plain = await gw.create(prompt=f"chained through {kind}", size="720x720", seconds="4")
        framed = await gw.create(prompt="red start", size="720x720", seconds="4",
                                 input_reference={"image_url": image})
        for video_id in (plain["id"], framed["id"]):
            done = await _finish(gw, video_id)
            assert done["status"] == "completed", done
            assert done["seconds"] == "4" and done["size"] == "720x720"
            path = tmp_path / f"{video_id}.mp4"
            path.write_bytes(await _download(gw, video_id, tmp_path))
            info = probe(path)
            assert (info.width, info.height) == (720, 720)
            assert abs(info.duration - 4) < 0.15 and info.has_audio
            thumb = Image.open(io.BytesIO(await _download(gw, video_id, tmp_path,
                                                          "thumbnail")))
            assert thumb.format == "WEBP"
            rows = await gw.rows()
            assert rows[video_id].backend == f"inner-{kind}"
            assert rows[video_id].upstream_id.startswith("video_")
            # the upstream's id never reaches the client
            assert rows[video_id].upstream_id not in str(done)
        # the reference image crossed the protocol: the inner render starts red
        with av.open(str(tmp_path / f"{framed['id']}.mp4")) as container:
            frame = next(container.decode(video=0)).to_image()
        r, g, b = frame.resize((32, 32)).getpixel((16, 16))
        assert r > 180 and g < 90 and b < 90, (r, g, b)


async def test_remix_goes_to_the_bound_channel_with_the_upstream_id(
        live_server, tmp_path, database_url):
    import httpx

    async with gateway(tmp_path, database_url, [_channel("openai", live_server)]) as gw:
        source = await gw.create(prompt="a red fox in snow", size="720x720", seconds="4")
        assert (await _finish(gw, source["id"]))["status"] == "completed"
        r = await gw.client.post(f"/v1/videos/{source['id']}/remix", headers=gw.headers(),
                                 json={"prompt": "the same fox at night"})
        assert r.status_code == 200, r.text
        remix = r.json()
        assert remix["remixed_from_video_id"] == source["id"]
        done = await _finish(gw, remix["id"])
        assert done["status"] == "completed", done
        rows = await gw.rows()
    inner_remix = httpx.get(f"{live_server.api}/videos/{rows[remix['id']].upstream_id}",
                            headers=live_server.headers()).json()
    # the inner vidgate saw a real remix of the upstream video, not a fresh generation
    assert inner_remix["remixed_from_video_id"] == rows[source["id"]].upstream_id
    assert inner_remix["prompt"] == "the same fox at night"
