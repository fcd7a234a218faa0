"""A server killed with SIGKILL while its task is bound to a hosted provider's job (fal,
Replicate) resumes polling that job after a restart on the same database, and completes the
task with the job's result: exactly one upstream job, never a second submit, one settlement.

The fake job is held in progress (its `job_seconds` huge) until the restarted server has
polled it, so the kill always lands while the task waits on the provider."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import yaml

from fakes.clips import Clips
from fakes.fal import FakeFal
from fakes.replicate import FakeReplicate
from fakes.serving import ServerThread
from fakes.upstream import FileHost
from support import fresh_database_url, server_env, start_server, wait_for
from vidgate.domain import Task
from vidgate.store.database import Database

FOREVER = 10**9  # seconds: the fake job stays in progress until the test lets it finish

PROVIDERS = {
    "fal": (FakeFal, "fal-ai/veo3"),
    "replicate": (FakeReplicate, "google/veo-3"),
}


def _read(database_url: str, method: str, task_id: str):
    """One read of the database from the test (the server runs in another process)."""
    async def read():
        db = Database(database_url)
        try:
            return await getattr(db, method)(task_id)
        finally:
            await db.close()

    return asyncio.run(read())


def _task(database_url: str, task_id: str) -> Task | None:
    return _read(database_url, "get_task", task_id)


def _events(database_url: str, task_id: str) -> list[tuple[str, str]]:
    return _read(database_url, "events", task_id)


@pytest.mark.parametrize("kind", list(PROVIDERS))
def test_sigkill_while_bound_to_a_hosted_job_resumes_polling_without_resubmit(tmp_path, kind):
    fake_class, upstream_model = PROVIDERS[kind]
    thread = ServerThread()
    url, cleanup = fresh_database_url(tmp_path)
    server = None
    try:
        cdn = FileHost()
        cdn.url = thread.serve(cdn.app())
        fake = fake_class(key=f"{kind}-restart-key", cdn=cdn, clips=Clips(tmp_path / "clips"),
                          job_seconds=FOREVER)
        fake.origin = thread.serve(fake.app())
        config = tmp_path / "vidgate.yaml"
        config.write_text(yaml.safe_dump({"channels": [
            {"name": f"hosted-{kind}", "kind": kind, "base_url": fake.url,
             "api_key_env": "VG_HOSTED_KEY", "models": {"sora-2": upstream_model},
             "poll_min_seconds": 0.1, "poll_max_seconds": 0.3,
             "allow_private_result_urls": True},
        ]}))
        env = server_env(tmp_path / "data", url, VIDGATE_CONFIG=str(config),
                         VG_HOSTED_KEY=fake.key, VIDGATE_LEASE_SECONDS="2")
        server = start_server(env)
        r = httpx.post(server.api + "/videos", headers=server.headers(),
                       json={"prompt": "a harbour at night", "model": "sora-2",
                             "size": "1280x720", "seconds": "8"})
        assert r.status_code == 200, r.text
        task_id = r.json()["id"]

        # Kill once the task row holds the provider's job id and the job has been polled.
        bound = wait_for(lambda: (t := _task(url, task_id)) and t.upstream_id and t,
                         timeout=60, what="the task to be bound to its upstream job")
        wait_for(lambda: any(m == "GET" for _, m, _ in fake.calls), timeout=30,
                 what="a poll before the kill")
        server.kill()
        killed_at = time.monotonic()
        assert _task(url, task_id).status in ("queued", "in_progress")

        server = start_server(env, key=server.key)
        wait_for(lambda: any(t > killed_at and m == "GET" for t, m, _ in fake.calls),
                 timeout=60, what="the restarted server to poll the same job")
        fake.job_seconds = 0.3  # now the job may finish

        def finished() -> dict | None:
            video = httpx.get(f"{server.api}/videos/{task_id}", headers=server.headers()).json()
            return video if video["status"] in ("completed", "failed") else None

        video = wait_for(finished, timeout=120, interval=0.2, what="the task to finish")
        assert video["status"] == "completed", video
        assert video["size"] == "1280x720" and video["seconds"] == "8"

        submits = [p for _, m, p in fake.calls if m == "POST"]  # submits (and no cancel)
        jobs = fake.requests if kind == "fal" else fake.predictions
        assert len(submits) == 1 and len(jobs) == 1, (submits, list(jobs))
        assert _task(url, task_id).upstream_id == bound.upstream_id
        assert not fake.cancels
        assert [k for _, k in _events(url, task_id) if k in ("completed", "failed")] == [
            "completed"]
    finally:
        if server is not None:
            server.stop()
        thread.stop()
        cleanup()
