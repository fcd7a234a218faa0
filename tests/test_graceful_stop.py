"""SIGTERM: the server stops claiming, hands its leases back and exits within a bound; a
second worker on the same database finishes its tasks without waiting for a lease to lapse.
Also: a live server's JSON log lines carry the request id of the request and of its task."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from support import (
    free_port,
    fresh_database_url,
    server_env,
    start_server,
    vidgate_cmd,
    wait_for,
)
from vidgate.store.database import Database
from vidgate.store.schema import tasks

LEASE = 120  # long, so only a hand-back lets another worker start before it runs out


def _leases(url: str, ids: list[str]) -> list[tuple]:
    async def read():
        db = Database(url)
        try:
            async with db.engine.connect() as conn:
                return (await conn.execute(
                    sa.select(tasks.c.id, tasks.c.lease_owner, tasks.c.next_poll_at)
                    .where(tasks.c.id.in_(ids)))).all()
        finally:
            await db.close()

    return asyncio.run(read())


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it has ended its work)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_sigterm_hands_tasks_to_another_worker_at_once(tmp_path):
    url, cleanup = fresh_database_url(tmp_path)
    env = server_env(tmp_path / "data", url, VIDGATE_LEASE_SECONDS=str(LEASE),
                     VIDGATE_RENDER_WORKERS="2", VIDGATE_LOG_FORMAT="json")
    first = start_server(env)
    others: list = []
    try:
        ids = [httpx.post(first.api + "/videos", headers=first.headers(),
                          json={"prompt": f"render {i}", "size": "720x720",
                                "seconds": "4"}).json()["id"] for i in range(2)]

        def rendering() -> bool:
            return all(httpx.get(f"{first.api}/videos/{i}", headers=first.headers()
                                 ).json()["status"] == "in_progress" for i in ids)

        wait_for(rendering, timeout=60, what="both renders to start")
        renderers = _children(first.proc.pid)
        assert renderers  # the render workers, busy with the two videos
        stopped_at = time.monotonic()
        first.proc.send_signal(signal.SIGTERM)  # the server process, as a supervisor would
        first.proc.wait(timeout=10)
        took = time.monotonic() - stopped_at
        assert took < 10, took
        # handed back: no owner, due now (not after the 60 s lease)
        after = _leases(url, ids)
        assert [row.lease_owner for row in after] == [None, None], after
        assert all(row.next_poll_at <= time.time() for row in after), after
        log = first.log()
        assert "handed back 2 tasks on stopping" in log, log[-3000:]
        # the abandoned renders stop with it: no orphan goes on rendering for nobody
        wait_for(lambda: not [pid for pid in renderers if _alive(pid)], timeout=15,
                 what="the render workers to end with their server")

        resumed_at = time.monotonic()
        api = start_server({**env, "VIDGATE_ROLE": "api"}, key=first.key)
        others.append(api)
        worker_log = open(tmp_path / "worker.log", "wb")
        worker_port = free_port()
        others.append(subprocess.Popen(vidgate_cmd("worker", "--port", str(worker_port)),
                                       env={**env, "VIDGATE_METRICS_PUBLIC": "1"},
                                       stdout=worker_log, stderr=subprocess.STDOUT,
                                       start_new_session=True))

        def finished():
            videos = [httpx.get(f"{api.api}/videos/{i}", headers=api.headers()).json()
                      for i in ids]
            return all(v["status"] == "completed" for v in videos) and videos

        wait_for(finished, timeout=LEASE - 20, interval=0.2,
                 what="the second worker to finish the handed-back tasks")
        assert time.monotonic() - resumed_at < LEASE - 20
        # the worker exposes its own metrics and readiness
        worker_url = f"http://127.0.0.1:{worker_port}"
        assert httpx.get(worker_url + "/readyz").json() == {"ready": True}
        found = {(s.name, tuple(sorted(s.labels.items()))): s.value
                 for f in text_string_to_metric_families(httpx.get(worker_url + "/metrics").text)
                 for s in f.samples}
        assert found[("vidgate_tasks_completed_total",
                      (("channel", "sandbox"), ("model", "sora-2")))] == 2
        assert found[("vidgate_tasks", (("status", "completed"),))] == 2
    finally:
        for other in others:
            if isinstance(other, subprocess.Popen):
                other.send_signal(signal.SIGTERM)
                other.wait(15)
            else:
                other.stop()
        first.kill()
        cleanup()


def test_live_json_logs_carry_the_request_id(tmp_path):
    url, cleanup = fresh_database_url(tmp_path)
    server = start_server(server_env(tmp_path / "data", url, VIDGATE_LOG_FORMAT="json"))
    try:
        r = httpx.post(server.api + "/videos", headers={**server.headers(),
                                                        "X-Request-Id": "live-req-1"},
                       json={"prompt": "a logged render", "size": "720x720"})
        assert r.headers["x-request-id"] == "live-req-1"
        task_id = r.json()["id"]

        def completed_line():
            lines = [json.loads(line) for line in server.log().splitlines()
                     if line.startswith("{")]
            about = [e for e in lines if task_id in e["message"]]
            return any(" completed on " in e["message"] for e in about) and about

        about = wait_for(completed_line, timeout=120, what="the task's completion line")
        assert {e.get("request_id") for e in about} == {"live-req-1"}, about
        assert {"vidgate.tasks", "vidgate.engine"} <= {e["logger"] for e in about}
    finally:
        server.stop()
        cleanup()
