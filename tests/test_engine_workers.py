"""Two engines on one database (store/leases.py, engine/scheduler.py): every task ends exactly
once, a channel's `max_in_flight` holds across both, no job is polled by two at once; on
PostgreSQL a create made elsewhere wakes an engine through LISTEN/NOTIFY, also after its
LISTEN connection was cut."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from support import TEST_DB, await_for
from vidgate.backends.base import Job, PollResult, ResultFiles
from vidgate.backends.sandbox.render import render_sandbox
from vidgate.backends.sandbox.spec import RenderSpec
from vidgate.channels import ChannelConfig
from vidgate.domain import QUEUED, Task, new_task_id
from vidgate.engine.router import Router
from vidgate.engine.scheduler import Engine
from vidgate.media.files import VIDEO_NAME
from vidgate.store.blobs import open_store
from vidgate.store.database import Database
from vidgate.store.schema import tasks

CAP = 2
POLLS_TO_FINISH = 2


@dataclass
class Upstream:
    """One provider seen by both engines: counts its jobs in flight and overlapping polls."""

    clip: Path
    ids: itertools.count = field(default_factory=itertools.count)
    submitted: dict[str, str] = field(default_factory=dict)   # upstream id -> task id
    polls: dict[str, int] = field(default_factory=dict)
    live: set[str] = field(default_factory=set)                # accepted, not yet fetched
    polling: set[str] = field(default_factory=set)
    cancelled: set[str] = field(default_factory=set)
    most_live: int = 0
    overlapping_polls: int = 0


class FakeBackend:
    """The engine's view of `Upstream` (one instance per engine, as in two processes)."""

    sticky = False
    poll_interval = 0.1
    supports_remix = False
    operations = frozenset()

    def __init__(self, name: str, upstream: Upstream) -> None:
        self.name = name
        self.up = upstream

    def free_slots(self) -> int | None:
        return None

    async def submit(self, job: Job) -> str:
        upstream_id = f"job_{next(self.up.ids)}"
        self.up.submitted[upstream_id] = job.task_id
        self.up.live.add(upstream_id)
        self.up.most_live = max(self.up.most_live, len(self.up.live))
        return upstream_id

    async def poll(self, job: Job) -> PollResult:
        uid = job.upstream_id
        if uid in self.up.polling:
            self.up.overlapping_polls += 1
        self.up.polling.add(uid)
        try:
            await asyncio.sleep(0.01)  # let a second poller of the same job show itself
        finally:
            self.up.polling.discard(uid)
        self.up.polls[uid] = self.up.polls.get(uid, 0) + 1
        if self.up.polls[uid] >= POLLS_TO_FINISH:
            return PollResult("completed", result_url=f"http://upstream/{uid}.mp4")
        return PollResult("in_progress", progress=50)

    async def fetch(self, job: Job) -> ResultFiles:
        job.work_dir.mkdir(parents=True, exist_ok=True)
        video = job.work_dir / VIDEO_NAME
        await asyncio.to_thread(shutil.copyfile, self.up.clip, video)
        self.up.live.discard(job.upstream_id)
        return ResultFiles(video=video)

    async def cancel(self, job: Job) -> None:
        self.up.live.discard(job.upstream_id)
        self.up.cancelled.add(job.upstream_id)

    async def close(self) -> None:
        return None


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clip")
    render_sandbox(RenderSpec(prompt="two engines", width=320, height=180, seconds=4, fps=2),
                   out)
    return out / VIDEO_NAME


def _engine(db: Database, data: Path, upstream: Upstream, *, tick: float) -> Engine:
    config = ChannelConfig(name="capped", kind="sandbox", models={"sora-2": "sora-2"},
                           max_in_flight=CAP, poll_min_seconds=0.2, poll_max_seconds=0.4)
    backend = FakeBackend("capped", upstream)
    return Engine(db, open_store(None, data), {"capped": backend}, work_dir=data / "work",
                  retention_seconds=3600, router=Router.build([config], {"capped": backend}),
                  lease_seconds=5.0, tick_seconds=tick)


async def _new_task(db: Database, owner: str) -> str:
    now = time.time()
    task = Task(id=new_task_id(), owner_id=owner, family="videos", model="sora-2",
                prompt="p", width=320, height=180, seconds=4, seed=0, status=QUEUED,
                progress=0, created_at=int(now), status_updated_at=int(now),
                deadline_at=now + 600, next_poll_at=now)
    await db.tasks.insert(task)
    return task.id


async def _statuses(db: Database, ids: list[str]) -> list[str]:
    async with db.engine.connect() as conn:
        rows = (await conn.execute(sa.select(tasks.c.status).where(tasks.c.id.in_(ids)))).all()
    return [r[0] for r in rows]


async def test_two_engines_end_every_task_once_within_the_channel_cap(tmp_path, database_url,
                                                                       clip):
    creator, db_a, db_b = (Database(database_url) for _ in range(3))
    await creator.migrate()
    upstream = Upstream(clip)
    engines = [_engine(db_a, tmp_path / "a", upstream, tick=0.05),
               _engine(db_b, tmp_path / "b", upstream, tick=0.05)]
    key, _ = await creator.create_key("two engines")
    ids = [await _new_task(creator, key.id) for _ in range(10)]
    runs = [asyncio.create_task(e.run()) for e in engines]
    try:
        async def all_ended() -> bool:
            return set(await _statuses(creator, ids)) <= {"completed", "failed"}

        await await_for(all_ended, timeout=120, what="both engines to end every task")
    finally:
        for engine in engines:
            engine.stop()
        await asyncio.gather(*runs)
    try:
        assert await _statuses(creator, ids) == ["completed"] * len(ids)
        assert sorted(await creator.events()) == sorted((i, "completed") for i in ids)
        assert sorted(upstream.submitted.values()) == sorted(ids)  # each offered once
        assert upstream.most_live <= CAP, f"{upstream.most_live} jobs in flight, cap {CAP}"
        assert upstream.most_live == CAP  # the cap was reached, so the check meant something
        assert upstream.overlapping_polls == 0
        assert all(n == POLLS_TO_FINISH for n in upstream.polls.values())
    finally:
        for db in (creator, db_a, db_b):
            await db.close()


async def test_an_engine_behind_claims_again_as_its_steps_end(tmp_path, database_url, clip):
    """More due than the engine has places for: it claims the next batch as soon as half its
    places are free, not a tick later (the tick here is a minute, longer than the wait for
    all 12 tasks on 3 places)."""
    db = Database(database_url)
    await db.migrate()
    upstream = Upstream(clip)
    config = ChannelConfig(name="open", kind="sandbox", models={"sora-2": "sora-2"},
                           poll_min_seconds=30, poll_max_seconds=30)
    backend = FakeBackend("open", upstream)
    engine = Engine(db, open_store(None, tmp_path), {"open": backend}, work_dir=tmp_path / "w",
                    retention_seconds=3600, router=Router.build([config], {"open": backend}),
                    tick_seconds=60.0, max_active=3)
    key, _ = await db.create_key("behind")
    ids = [await _new_task(db, key.id) for _ in range(12)]
    run = asyncio.create_task(engine.run())
    try:
        async def all_submitted() -> bool:
            return len(upstream.submitted) == len(ids)

        await await_for(all_submitted, timeout=30, what="every task submitted, batch after "
                                                        "batch, without waiting for the tick")
        assert sorted(upstream.submitted.values()) == sorted(ids)
    finally:
        engine.stop()
        await run
        await db.close()


async def test_a_job_whose_binding_was_not_written_is_withdrawn(tmp_path, database_url, clip):
    """The database refuses the binding once (as PostgreSQL does with too many clients): the
    accepted job is cancelled upstream, and the retried step's job is the one that runs."""
    db = Database(database_url)
    await db.migrate()
    upstream = Upstream(clip)
    engine = _engine(db, tmp_path / "w", upstream, tick=0.05)
    real_update = db.leases.update_leased
    refused: list[str] = []

    async def refuse_first_binding(task_id: str, worker: str, **values):
        if "upstream_id" in values and not refused:
            refused.append(values["upstream_id"])
            raise ConnectionError("too many clients")
        return await real_update(task_id, worker, **values)

    db.leases.update_leased = refuse_first_binding
    key, _ = await db.create_key("withdraw")
    task_id = await _new_task(db, key.id)
    run = asyncio.create_task(engine.run())
    try:
        async def ended() -> bool:
            return (await _statuses(db, [task_id]))[0] in ("completed", "failed")

        await await_for(ended, timeout=60, what="the task to end")
    finally:
        engine.stop()
        await run
    try:
        assert await _statuses(db, [task_id]) == ["completed"]
        assert len(upstream.submitted) == 2 and upstream.cancelled == set(refused)
    finally:
        await db.close()


@pytest.mark.skipif(TEST_DB != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")
async def test_a_create_elsewhere_wakes_the_engine_also_after_its_listen_is_cut(
        tmp_path, database_url, clip):
    creator, db = Database(database_url), Database(database_url)
    await creator.migrate()
    upstream = Upstream(clip)
    engine = _engine(db, tmp_path / "w", upstream, tick=3600)  # no poll within the test
    key, _ = await creator.create_key("wake")
    run = asyncio.create_task(engine.run())

    async def listener_pid() -> int | None:
        async with creator.engine.connect() as conn:
            return (await conn.execute(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                {"name": f"vidgate-listen {engine.worker_id}"})).scalar()

    async def idle_and_listening() -> bool:  # the rounds the wake-ups started are over
        return engine.listener.connected.is_set() and engine.loop_age() > 0.5

    async def taken(task_id: str) -> bool:
        return task_id in upstream.submitted.values()

    try:
        await await_for(idle_and_listening, timeout=30, what="the engine to listen")
        first = await _new_task(creator, key.id)
        await await_for(lambda: taken(first), timeout=30, what="the notification")

        old = await listener_pid()
        async with creator.engine.connect() as conn:
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": old})

        async def relistening() -> bool:
            pid = await listener_pid()
            return pid is not None and pid != old and await idle_and_listening()

        await await_for(relistening, timeout=30, what="the listener to reconnect")
        second = await _new_task(creator, key.id)
        await await_for(lambda: taken(second), timeout=30, what="a notification after it")
    finally:
        engine.stop()
        await run
        await creator.close()
        await db.close()
