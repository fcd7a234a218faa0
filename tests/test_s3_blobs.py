"""Assets in an S3-compatible store: the same API, streamed in ranges, removed on delete."""

from __future__ import annotations

import secrets

import httpx
import openai
import pytest

from helpers_async import create, wait_completed
from s3_server import CREDENTIALS, start_s3
from support import fresh_database_url, server_env, start_server
from vidgate.app import create_app
from vidgate.media.probe import probe
from vidgate.store.blobs import S3BlobStore, open_store


@pytest.fixture(scope="module")
def s3():
    server = start_s3()
    yield server
    server.stop()


@pytest.fixture
def bucket(s3, monkeypatch):
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    name = "vg-" + secrets.token_hex(4)
    s3.client().create_bucket(Bucket=name)
    return name


def _objects(s3, bucket):
    return [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket).get("Contents", [])]


async def test_store_operations(s3, bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDGATE_S3_ENDPOINT_URL", s3.endpoint)
    store = open_store(f"s3://{bucket}/pre", tmp_path)
    assert isinstance(store, S3BlobStore) and store.local_path("x") is None
    source = tmp_path / "f.bin"
    data = bytes(range(256)) * 5000
    source.write_bytes(data)
    assert await store.put_file("tasks/a/video.mp4", source, move=True) == len(data)
    assert not source.exists()
    assert await store.put_bytes("tasks/a/reference", b"ref") == 3
    assert await store.get_bytes("tasks/a/reference") == b"ref"
    info = await store.stat("tasks/a/video.mp4")
    assert info.size == len(data) and info.etag.startswith('"')
    assert await store.stat("tasks/a/missing") is None
    got = b"".join([c async for c in store.read_range("tasks/a/video.mp4", 1000, 2999_999)])
    assert got == data[1000:]
    assert sorted(_objects(s3, bucket)) == ["pre/tasks/a/reference", "pre/tasks/a/video.mp4"]
    await store.put_bytes("tasks/ab/keep", b"k")
    await store.delete_prefix("tasks/a")  # not tasks/ab
    assert _objects(s3, bucket) == ["pre/tasks/ab/keep"]


async def test_whole_flow_on_s3(s3, bucket, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("VIDGATE_S3_ENDPOINT_URL", s3.endpoint)
    settings.blob_url = f"s3://{bucket}/assets"
    app = create_app(settings)
    async with app.lifespan():
        _, key = await app.services.db.create_key("s3")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            client = type("C", (), {"client": c, "headers": lambda self, k=None: {
                "Authorization": f"Bearer {k or key}"}})()
            video = await wait_completed(client, (await create(client))["id"])
            assert not (settings.data_dir / "blobs").exists()  # nothing stored locally
            assert len(_objects(s3, bucket)) == 3

            h = client.headers()
            full = await c.get(f"/v1/videos/{video['id']}/content", headers=h)
            assert full.status_code == 200 and full.headers["content-type"] == "video/mp4"
            assert int(full.headers["content-length"]) == len(full.content)
            path = tmp_path / "s3.mp4"
            path.write_bytes(full.content)
            info = probe(path)
            assert (info.width, info.height) == (720, 720)

            signed = video["url"].split("://", 1)[1].split("/", 1)[1]
            part = await c.get("/" + signed, headers={"Range": "bytes=100-199"})
            assert part.status_code == 206 and part.content == full.content[100:200]
            assert part.headers["content-range"] == f"bytes 100-199/{len(full.content)}"
            tail = await c.get("/" + signed, headers={"Range": "bytes=-10"})
            assert tail.content == full.content[-10:]
            bad = await c.get("/" + signed, headers={"Range": f"bytes={len(full.content)}-"})
            assert bad.status_code == 416
            head = await c.head("/" + signed)
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(len(full.content))
            again = await c.get("/" + signed, headers={"If-None-Match": full.headers["etag"]})
            assert again.status_code == 304
            thumb = await c.get(f"/v1/videos/{video['id']}/content?variant=thumbnail", headers=h)
            assert thumb.headers["content-type"] == "image/webp" and thumb.content[:4] == b"RIFF"

            assert (await c.delete(f"/v1/videos/{video['id']}", headers=h)).status_code == 200
            assert _objects(s3, bucket) == []


def test_live_server_with_s3_and_the_openai_sdk(s3, bucket, tmp_path):
    url, cleanup = fresh_database_url(tmp_path)
    server = start_server(server_env(tmp_path / "data", url, **s3.env(bucket)))
    try:
        client = openai.OpenAI(base_url=server.api, api_key=server.key, max_retries=0)
        video = client.videos.create_and_poll(prompt="stored in S3", size="720x720",
                                              poll_interval_ms=200)
        assert video.status == "completed"
        data = client.videos.download_content(video.id).read()
        (tmp_path / "v.mp4").write_bytes(data)
        assert probe(tmp_path / "v.mp4").width == 720
        assert httpx.get(video.model_extra["url"]).content == data
        assert any(k.startswith("vidgate/tasks/") for k in _objects(s3, bucket))
    finally:
        server.stop()
        cleanup()
