"""Settlement happens exactly once: racing finalizers, and a SIGKILL between hold and settle."""

from __future__ import annotations

import asyncio
import time

import httpx
import sqlalchemy as sa

from support import fresh_database_url, server_env, start_server, wait_for
from vidgate.backends.base import ResultFiles
from vidgate.backends.sandbox.render import render_sandbox
from vidgate.backends.sandbox.spec import RenderSpec
from vidgate.domain import COMPLETED, QUEUED, Task, new_task_id
from vidgate.engine.finalize import Finalizer
from vidgate.media.files import SPRITESHEET_NAME, THUMBNAIL_NAME, VIDEO_NAME
from vidgate.store.blobs import LocalBlobStore
from vidgate.store.database import Database
from vidgate.store.schema import ledger, tasks


class RenderedOnce:
    """A backend whose job already finished: each fetch hands out a fresh copy of one video."""

    def __init__(self, source_dir, work_dir):
        self.source = source_dir
        self.work = work_dir
        self.fetches = 0

    async def fetch(self, job):
        self.fetches += 1
        out = self.work / f"copy{self.fetches}"
        out.mkdir(parents=True)
        names = (VIDEO_NAME, THUMBNAIL_NAME, SPRITESHEET_NAME)
        for name in names:
            (out / name).write_bytes((self.source / name).read_bytes())
        return ResultFiles(*(out / n for n in names))


async def _rows(db, task_id):
    async with db.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(
            sa.select(ledger.c.kind, ledger.c.amount_micro).where(ledger.c.task_id == task_id)
            .order_by(ledger.c.id))).all()]


async def test_two_finalizers_settle_once(tmp_path, database_url):
    db = Database(database_url)
    await db.migrate()
    try:
        blobs = LocalBlobStore(tmp_path / "blobs")
        source = tmp_path / "src"
        await asyncio.to_thread(render_sandbox, RenderSpec("race", 320, 240, 2, fps=8), source)
        key, _ = await db.create_key("race", balance_micro=5_000_000)
        now = time.time()
        task = Task(id=new_task_id(), owner_id=key.id, family="videos", model="sora-2",
                    prompt="race", width=1280, height=720, seconds=8, seed=0, status=QUEUED,
                    progress=0, created_at=int(now), status_updated_at=int(now),
                    deadline_at=now + 3600, next_poll_at=now, backend="sandbox",
                    hold_micro=800_000)
        await db.tasks.insert(task)

        # worker A claims, stalls past its lease; worker B claims the same task
        (a_task,) = await db.leases.claim_due("A", now + 1, now + 2, 10)
        (b_task,) = await db.leases.claim_due("B", now + 5, now + 60, 10)
        assert a_task.id == b_task.id == task.id

        # delivered 2 s of the 8 s held: charge 2 s, refund 6 s
        pricing = lambda t, seconds: 100_000 * max(1, round(seconds))  # noqa: E731
        backend = RenderedOnce(source, tmp_path / "work")
        fin = Finalizer(db, blobs, 3600, pricing)
        job = type("Job", (), {"work_dir": tmp_path / "work"})()
        results = await asyncio.gather(fin.complete(a_task, backend, job, "A"),
                                       fin.complete(b_task, backend, job, "B"))
        assert sorted(results) == [False, True]
        assert await db.events(task.id) == [(task.id, "completed")]
        assert await _rows(db, task.id) == [("hold", -800_000), ("refund", 600_000)]
        accounts = db.keys
        assert (await accounts.get(key.id)).balance_micro == 5_000_000 - 200_000
        assert await accounts.ledger_sum(key.id) == 4_800_000
        # the loser removed its own copy; the winner's assets are intact
        done = await db.get_task(task.id)
        folders = {p.parent for p in (tmp_path / "blobs").rglob("video.mp4")}
        assert folders == {blobs.path(done.video_key).parent}
        # a late third finalizer changes nothing
        assert not await db.leases.finish_leased(task.id, "B", COMPLETED, charge_micro=1)
        assert await _rows(db, task.id) == [("hold", -800_000), ("refund", 600_000)]
    finally:
        await db.close()


def test_sigkill_between_hold_and_settle(tmp_path):
    url, cleanup = fresh_database_url(tmp_path)
    env = server_env(tmp_path / "data", url, VIDGATE_LEASE_SECONDS="2")

    async def make_key():
        db = Database(url)
        await db.migrate()
        try:
            return await db.create_key("paying", balance_micro=3_000_000)
        finally:
            await db.close()

    key, secret = asyncio.run(make_key())
    server = start_server(env, key=secret)
    try:
        ids = [httpx.post(server.api + "/videos", headers=server.headers(),
                          json={"prompt": f"paid {i}", "size": "720x720", "seconds": "8"}
                          ).json()["id"] for i in range(2)]
        wait_for(lambda: httpx.get(f"{server.api}/videos/{ids[0]}",
                                   headers=server.headers()).json()["progress"] > 5,
                 timeout=60, what="rendering to start")
        server.kill()  # holds are taken, nothing is settled yet
        server = start_server(env, key=secret)
        wait_for(lambda: all(httpx.get(f"{server.api}/videos/{i}", headers=server.headers())
                             .json()["status"] == "completed" for i in ids),
                 timeout=180, what="both tasks to complete after restart")
    finally:
        server.stop()

    async def check():
        db = Database(url)
        try:
            for task_id in ids:
                # 8 s held and 8 s delivered at 0.10 USD/s: the hold is kept, nothing refunded
                assert await _rows(db, task_id) == [("hold", -800_000)]
                assert await db.events(task_id) == [(task_id, "completed")]
                async with db.engine.connect() as conn:
                    cost = (await conn.execute(sa.select(tasks.c.cost_micro)
                                               .where(tasks.c.id == task_id))).scalar()
                assert cost == 800_000
            accounts = db.keys
            assert (await accounts.get(key.id)).balance_micro == 1_400_000
            assert await accounts.ledger_sum(key.id) == 1_400_000
        finally:
            await db.close()

    try:
        asyncio.run(check())
    finally:
        cleanup()
