"""An extension on a kind that cannot extend: image-to-video of the added seconds from the
source's last frame, on the source's channel, joined by vidgate into one video."""

from __future__ import annotations

import base64
import io

import av
import numpy as np
from PIL import Image

from fakes.fixtures import fake_world_fixture, sample_media_fixture  # noqa: F401
from fakes.gateway import channel_for, gateway
from support import await_for
from vidgate.media.probe import probe


async def _finish(gw, video_id: str) -> dict:
    async def done():
        v = await gw.get(video_id)
        return v if v["status"] in ("completed", "failed") else None

    video = await await_for(done, timeout=120, interval=0.1, what=f"{video_id} to finish")
    assert video["status"] == "completed", video
    return video


def _rgb(frame) -> np.ndarray:
    return np.asarray(frame, dtype=np.float64)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


async def test_generations_channel_continues_from_the_last_frame_and_vidgate_joins(
        tmp_path, database_url, fake_world):
    upstream = fake_world.add("generations", key="sk-gen")
    async with gateway(tmp_path, database_url, [channel_for(upstream, "gen")]) as gw:
        source = await gw.create(prompt="a kite", size="720x1280", seconds="4")
        await _finish(gw, source["id"])
        r = await gw.client.get(f"/v1/videos/{source['id']}/content", headers=gw.headers())
        (tmp_path / "src.mp4").write_bytes(r.content)
        src = probe(tmp_path / "src.mp4")

        r = await gw.client.post("/v1/videos/extensions", headers=gw.headers(), json={
            "prompt": "the kite climbs", "seconds": "4", "video": {"id": source["id"]}})
        assert r.status_code == 200, r.text
        done = await _finish(gw, r.json()["id"])
        r = await gw.client.get(f"/v1/videos/{done['id']}/content", headers=gw.headers())
        (tmp_path / "out.mp4").write_bytes(r.content)

    job = upstream.jobs[max(upstream.jobs, key=lambda j: upstream.jobs[j].index)]
    assert job.seconds in (4 - round(src.duration), str(4 - round(src.duration)))
    sent = Image.open(io.BytesIO(base64.b64decode(job.reference.decode().split(",", 1)[1])))
    with av.open(str(tmp_path / "src.mp4")) as container:
        frames = [f.to_image() for f in container.decode(video=0)]
    assert _psnr(_rgb(sent.convert("RGB")), _rgb(frames[-1])) > 40  # its last frame
    out = probe(tmp_path / "out.mp4")
    assert abs(out.duration - 2 * src.duration) < 0.3  # source + the upstream's part
    with av.open(str(tmp_path / "out.mp4")) as container:
        head = [f.to_image() for f in container.decode(video=0)][:len(frames)]
    assert min(_psnr(_rgb(a), _rgb(b)) for a, b in zip(head, frames, strict=True)) > 30
