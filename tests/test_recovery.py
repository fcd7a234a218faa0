"""A server killed with SIGKILL mid-render finishes every task after restart, each exactly once."""

from __future__ import annotations

import asyncio

import httpx

from support import fresh_database_url, server_env, start_server, wait_for
from vidgate.media.probe import probe
from vidgate.store.database import Database


def _events(database_url: str) -> list[tuple[str, str]]:
    async def read():
        db = Database(database_url)
        try:
            return await db.events()
        finally:
            await db.close()

    return asyncio.run(read())


def test_sigkill_while_rendering_and_queued_then_restart(tmp_path):
    url, cleanup = fresh_database_url(tmp_path)
    env = server_env(tmp_path / "data", url, VIDGATE_LEASE_SECONDS="2",
                     VIDGATE_RENDER_WORKERS="1")
    server = start_server(env)
    try:
        ids = []
        for i in range(4):
            r = httpx.post(server.api + "/videos", headers=server.headers(),
                           json={"prompt": f"crash test {i}", "size": "720x720",
                                 "seconds": "4"})
            assert r.status_code == 200, r.text
            ids.append(r.json()["id"])

        def statuses() -> dict[str, dict]:
            return {i: httpx.get(f"{server.api}/videos/{i}", headers=server.headers()).json()
                    for i in ids}

        # Kill while the first task is mid-render and the others still wait.
        wait_for(lambda: statuses()[ids[0]]["progress"] > 5, timeout=60,
                 what="the first render to be under way")
        before = statuses()
        assert before[ids[-1]]["status"] == "queued"
        assert all(v["status"] != "completed" for v in before.values())
        server.kill()

        server = start_server(env, key=server.key)
        done = wait_for(
            lambda: (s := statuses()) and all(v["status"] in ("completed", "failed")
                                              for v in s.values()) and s,
            timeout=180, what="every task to finish after restart")
        assert all(v["status"] == "completed" for v in done.values()), done
        for task_id, video in done.items():
            assert video["progress"] == 100
            data = httpx.get(video["url"]).content
            path = tmp_path / f"{task_id}.mp4"
            path.write_bytes(data)
            info = probe(path)
            assert (info.width, info.height) == (720, 720)
            assert abs(info.duration - 4) < 0.15
        events = _events(url)
        assert sorted(events) == sorted((i, "completed") for i in ids), events
    finally:
        server.stop()
        cleanup()
