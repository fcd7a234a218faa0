"""Edits, extensions and characters through a vidgate in front of a vidgate (`openai`
channel), and the clear refusal of a channel kind that cannot edit."""

from __future__ import annotations

import os

import httpx
import sqlalchemy as sa

from fakes.clips import Clips
from fakes.gateway import gateway
from support import await_for
from vidgate.channels import ChannelConfig
from vidgate.media.probe import probe
from vidgate.store.schema import characters, tasks


def _channel(kind: str, base_url: str, key: str) -> ChannelConfig:
    os.environ["VG_INNER_KEY"] = key
    return ChannelConfig(name=f"inner-{kind}", kind=kind, base_url=base_url,
                         api_key_env="VG_INNER_KEY", models={"sora-2": "sora-2"},
                         poll_min_seconds=0.2, poll_max_seconds=1.0)


async def _finish(gw, video_id: str) -> dict:
    async def done():
        v = await gw.get(video_id)
        return v if v["status"] in ("completed", "failed") else None

    video = await await_for(done, timeout=180, interval=0.2, what=f"{video_id} to finish")
    assert video["status"] == "completed", video
    return video


async def _download(gw, video_id: str, dest) -> object:
    r = await gw.client.get(f"/v1/videos/{video_id}/content", headers=gw.headers())
    assert r.status_code == 200, r.text
    dest.write_bytes(r.content)
    return probe(dest)


async def test_edit_extend_and_character_are_forwarded_to_the_inner_vidgate(
        live_server, tmp_path, database_url):
    async with gateway(tmp_path, database_url,
                       [_channel("openai", live_server.api, live_server.key)]) as gw:
        source = await gw.create(prompt="a boat on a lake", size="720x720", seconds="4")
        await _finish(gw, source["id"])
        src = await _download(gw, source["id"], tmp_path / "src.mp4")

        r = await gw.client.post("/v1/videos/extensions", headers=gw.headers(), json={
            "prompt": "the boat sails on", "seconds": "8", "video": {"id": source["id"]}})
        assert r.status_code == 200, r.text
        extended = await _finish(gw, r.json()["id"])
        assert extended["seconds"] == "8"
        info = await _download(gw, extended["id"], tmp_path / "ext.mp4")
        assert abs(info.duration - 8) < 0.2

        with open(tmp_path / "src.mp4", "rb") as f:  # a file part crosses as a file part
            r = await gw.client.post("/v1/videos/edits", headers=gw.headers(),
                                     data={"prompt": "stormy"},
                                     files={"video": ("src.mp4", f, "video/mp4")})
        assert r.status_code == 200, r.text
        edited = await _finish(gw, r.json()["id"])
        info = await _download(gw, edited["id"], tmp_path / "edit.mp4")
        assert (info.width, info.height) == (src.width, src.height)
        assert abs(info.duration - src.duration) < 0.2

        rows = await gw.rows()
        for video_id in (extended["id"], edited["id"]):
            assert rows[video_id].backend == "inner-openai"
            inner = httpx.get(f"{live_server.api}/videos/{rows[video_id].upstream_id}",
                              headers=live_server.headers()).json()
            assert inner["status"] == "completed"
        inner_ext = httpx.get(f"{live_server.api}/videos/{rows[extended['id']].upstream_id}",
                              headers=live_server.headers()).json()
        assert inner_ext["seconds"] == "8"

        with open(tmp_path / "src.mp4", "rb") as f:
            r = await gw.client.post("/v1/videos/characters", headers=gw.headers(),
                                     data={"name": "Skipper"},
                                     files={"video": ("src.mp4", f, "video/mp4")})
        assert r.status_code == 200, r.text
        made = r.json()
        async with gw.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(characters).where(
                characters.c.id == made["id"]))).first()
        upstream = row.upstreams["inner-openai"]
        inner = httpx.get(f"{live_server.api}/videos/characters/{upstream}",
                          headers=live_server.headers())
        assert inner.status_code == 200 and inner.json()["name"] == "Skipper", inner.text


async def test_a_kind_that_cannot_edit_is_a_400_naming_the_model_and_writes_nothing(
        tmp_path, database_url):
    clip = Clips(tmp_path / "clips").get(720, 720, 2)
    channel = _channel("generations", "http://127.0.0.1:9/v1", "unused")
    async with gateway(tmp_path, database_url, [channel]) as gw:
        blobs_before = sorted(p for p in gw.services.blobs.root.rglob("*") if p.is_file())
        with open(clip, "rb") as f:
            r = await gw.client.post("/v1/videos/edits", headers=gw.headers(),
                                     data={"prompt": "x"},
                                     files={"video": ("c.mp4", f, "video/mp4")})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "unsupported_operation" and error["param"] == "model"
        assert "sora-2" in error["message"]
        async with gw.db.engine.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(tasks))
                    ).scalar() == 0
        assert sorted(p for p in gw.services.blobs.root.rglob("*") if p.is_file()) \
            == blobs_before
