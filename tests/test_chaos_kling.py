"""Chaos for the `kling` kind, on the machinery of test_chaos.py: 150 tasks on one Kling fake
with ~20% of every call faulted (create, query, CDN download). Every task must end, exactly
once, with the outcome Kling decided; every API call carries a JWT the fake accepts, and the
CDN never sees one."""

from __future__ import annotations

import base64
import random
import time

import pytest

from fakes.faults import Faults
from fakes.gateway import gateway
from fakes.kling import ACCESS, SECRET, KlingWorld, kling_channel
from fakes.sized import SizedVideos
from support import await_for
from test_chaos import DOWNLOAD_FAULTS, FAULT_RATE, _png
from vidgate.store.schema import tasks

TASKS = 150
# Kling's own failure modes plus the gateway's (deadline, client cancel); Kling has no cancel,
# so a cancelled task simply ends in vidgate.
SCENARIOS = [
    ("", 70, ("completed", None)),
    ("[moderation]", 8, ("failed", "moderation_blocked")),
    ("[fail]", 8, ("failed", "upstream_error")),
    ("[stuck]", 4, ("failed", "timeout")),
    ("[cancel]", 4, ("failed", "cancelled")),
]


@pytest.fixture
def kling_world(tmp_path_factory):
    world = KlingWorld(SizedVideos(tmp_path_factory.mktemp("kling-chaos")), ACCESS, SECRET)
    yield world
    world.close()


async def test_chaos_kling(tmp_path, database_url, kling_world):
    rng = random.Random(11)
    fake = kling_world.add(faults=Faults(seed=3).everywhere(FAULT_RATE))
    files = kling_world.files
    files.faults.kinds["download"] = DOWNLOAD_FAULTS
    files.faults.everywhere(FAULT_RATE)
    image = "data:image/png;base64," + base64.b64encode(_png()).decode()

    started = time.monotonic()
    async with gateway(tmp_path, database_url, [kling_channel(fake, "chaos-kling")]) as gw:
        expected: dict[str, tuple[str, str | None]] = {}
        stuck, cancel = [], []
        tags = [tag for tag, weight, _ in SCENARIOS for _ in range(weight)]
        outcome = {tag: result for tag, _, result in SCENARIOS}
        for i in range(TASKS):
            tag = rng.choice(tags)
            body = {"prompt": f"chaos {i} {tag}", "size": "1280x720", "seconds": "5",
                    "model": "sora-2"}
            if i % 10 == 0:
                body["input_reference"] = {"image_url": image}
            video = await gw.create(**body)
            expected[video["id"]] = outcome[tag]
            if tag == "[stuck]":
                stuck.append(video["id"])
            if tag == "[cancel]":
                cancel.append(video["id"])
        async with gw.db.engine.begin() as conn:
            await conn.execute(tasks.update().where(tasks.c.id.in_(stuck))
                               .values(deadline_at=time.time() + 4))
        for video_id in cancel:
            r = await gw.client.delete(f"/v1/videos/{video_id}", headers=gw.headers())
            assert r.status_code == 200

        await await_for(gw.all_finished, timeout=180, interval=0.5,
                        what="every kling chaos task to finish")
        rows = await gw.rows()
        events = await gw.terminal_events()

    print(f"\nkling chaos: {TASKS} tasks in {time.monotonic() - started:.1f}s; faults: "
          f"{sum(fake.faults.injected.values())} API, {sum(files.faults.injected.values())} CDN")
    per_task: dict[str, list[str]] = {}
    for task_id, kind in events:
        per_task.setdefault(task_id, []).append(kind)
    assert len(rows) == TASKS and set(per_task) == set(rows)
    wrong = {}
    for task_id, row in rows.items():
        assert per_task[task_id] == [row.status]
        if task_id in cancel and row.status == "completed":
            continue  # it finished before the delete arrived: also a correct ending
        if (row.status, row.error_code) != expected[task_id]:
            wrong[task_id] = (row.prompt, row.status, row.error_code, row.error_message)
        if row.status == "completed":
            assert (row.delivered_width, row.delivered_height) == (1280, 720)
            assert row.upstream_id.split(":")[0] in ("text2video", "image2video")
    assert not wrong, wrong

    # every request carried a token the fake verified; the CDN never saw a credential
    assert not fake.rejected
    assert {c["iss"] for c in fake.claims} == {ACCESS}
    assert files.recorder.authorizations() == {None}
    assert {call for call, _ in fake.faults.injected} == {"submit", "poll"}
    assert {call for call, _ in files.faults.injected} == {"download"}
