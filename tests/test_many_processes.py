"""One API process and two engine workers on one database: every task finishes exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import httpx

from support import fresh_database_url, server_env, start_server, vidgate_cmd, wait_for
from vidgate.store.database import Database


def test_api_process_and_two_workers_share_the_work(tmp_path):
    url, cleanup = fresh_database_url(tmp_path)
    env = server_env(tmp_path / "data", url, VIDGATE_LEASE_SECONDS="3",
                     VIDGATE_RENDER_WORKERS="1")
    api = start_server({**env, "VIDGATE_ROLE": "api"})
    workers = []
    try:
        ids = [httpx.post(api.api + "/videos", headers=api.headers(),
                          json={"prompt": f"shared {i}", "size": "720x720"}).json()["id"]
               for i in range(8)]
        # nothing runs the tasks yet: the API process has no engine
        assert {httpx.get(f"{api.api}/videos/{i}", headers=api.headers()).json()["status"]
                for i in ids} == {"queued"}
        for n in range(2):
            log = open(tmp_path / f"worker{n}.log", "wb")
            workers.append(subprocess.Popen(vidgate_cmd("worker"), env=env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True))

        def finished():
            videos = [httpx.get(f"{api.api}/videos/{i}", headers=api.headers()).json()
                      for i in ids]
            return all(v["status"] in ("completed", "failed") for v in videos) and videos

        videos = wait_for(finished, timeout=240, what="the workers to finish every task")
        assert [v["status"] for v in videos] == ["completed"] * 8
        for video in videos:
            assert httpx.get(video["url"]).status_code == 200

        async def events():
            db = Database(url)
            try:
                return await db.events()
            finally:
                await db.close()

        assert sorted(asyncio.run(events())) == sorted((i, "completed") for i in ids)
        # both workers took part: a worker only claims what it can start (one render slot
        # each), so neither hoards queued tasks; asset folders are named after the worker
        folders = (tmp_path / "data" / "blobs" / "tasks").glob("*/*-*")
        assert len({f.name.rsplit("-", 1)[0] for f in folders if f.is_dir()}) == 2
        logs = [(tmp_path / f"worker{n}.log").read_text() for n in range(2)]
        assert all("Traceback" not in text for text in logs), logs
    finally:
        for proc in workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20)
        api.stop()
        cleanup()
