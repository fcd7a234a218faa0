"""Fixtures for the hosted-provider fakes: sized clips, and a server thread with a CDN host on
another origin. Import the *_fixture functions into a test module to register them."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import await_for
from vidgate.media import probe as media

from .clips import Clips
from .serving import ServerThread
from .upstream import FileHost


@pytest.fixture(scope="session", name="clips")
def clips_fixture(tmp_path_factory) -> Clips:
    return Clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(name="servers")
def servers_fixture():
    """(thread to serve fakes on, CDN file host on 127.0.0.2 or at least another port)."""
    thread = ServerThread()
    cdn = FileHost()
    try:
        cdn.url = thread.serve(cdn.app(), host="127.0.0.2")
    except OSError:  # no 127.0.0.2 here: another port is still another origin
        cdn.url = thread.serve(cdn.app())
    yield thread, cdn
    thread.stop()


async def finish(gw, video_id: str, timeout: float = 60) -> dict:
    """The video object once it completed or failed, read through the public API."""
    async def done():
        video = await gw.get(video_id)
        return video if video["status"] in ("completed", "failed") else None

    return await await_for(done, timeout=timeout, what=f"{video_id} to finish")


async def stored_info(gw, video_id: str, folder: Path) -> media.MediaInfo:
    """What vidgate serves as the video's content, probed: real size and length."""
    r = await gw.client.get(f"/v1/videos/{video_id}/content", headers=gw.headers())
    assert r.status_code == 200
    path = folder / f"{video_id}.mp4"
    path.write_bytes(r.content)
    return media.probe(path)


async def wait_bound(gw, video_id: str) -> None:
    """Until the engine has an upstream job for the task."""
    async def bound():
        return bool((await gw.rows())[video_id].upstream_id)

    await await_for(bound, timeout=30, what="an upstream job")
