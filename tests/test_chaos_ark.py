"""Chaos on the `ark` kind: the scenarios of test_chaos.py (same tags, same expected endings,
same fault rate) against the Seedance fake, whose results live on a second origin. Every task
must end exactly once with the outcome the fake decided, and the key must stay on Ark."""

from __future__ import annotations

import base64
import os
import random
import time

from fakes.ark import serve_ark
from fakes.faults import Faults
from fakes.fixtures import fake_world_fixture, sample_media_fixture  # noqa: F401
from fakes.gateway import FAST, gateway
from support import await_for
from test_chaos import DOWNLOAD_FAULTS, FAULT_RATE, SCENARIOS, _png
from vidgate.channels import ChannelConfig
from vidgate.store.schema import tasks

TASKS = 150
# Ark's own calls (submit, poll, cancel) get every fault kind, 404 flaps included.
ARK_FAULTS = ("500", "502", "503", "429", "slow", "reset", "garbage", "404")


async def test_chaos_ark(tmp_path, database_url, fake_world):
    rng = random.Random(11)
    faults = Faults(seed=3, kinds={c: ARK_FAULTS for c in ("submit", "poll", "cancel")})
    for call in ("submit", "poll", "cancel"):
        faults.rates[call] = FAULT_RATE
    ark = serve_ark(fake_world, tmp_path / "renders", key="ark-chaos-key", faults=faults,
                    chaos=True)
    fake_world.files.faults.kinds["download"] = DOWNLOAD_FAULTS
    fake_world.files.faults.rates["download"] = FAULT_RATE
    os.environ["VG_TEST_ARK_CHAOS"] = ark.key
    channel = ChannelConfig(name="chaos-ark", kind="ark", base_url=ark.url,
                            api_key_env="VG_TEST_ARK_CHAOS",
                            models={"sora-2": "seedance-1-5-pro-251215",
                                    "sora-2-pro": "dreamina-seedance-2-0-260128"}, **FAST)
    image = "data:image/png;base64," + base64.b64encode(_png()).decode()

    started = time.monotonic()
    async with gateway(tmp_path, database_url, [channel]) as gw:
        expected: dict[str, tuple[str, str | None]] = {}
        stuck, cancel = [], []
        tags = [tag for tag, weight, _ in SCENARIOS for _ in range(weight)]
        outcome = {tag: result for tag, _, result in SCENARIOS}
        for i in range(TASKS):
            tag = rng.choice(tags)
            body = {"prompt": f"chaos {i} {tag}", "size": rng.choice(("1280x720", "720x1280")),
                    "seconds": rng.choice(("4", "5", "8")),
                    "model": rng.choice(("sora-2", "sora-2-pro"))}
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
                        what="every chaos task to finish")
        elapsed = time.monotonic() - started
        rows = await gw.rows()
        events = await gw.terminal_events()

    print(f"\nark chaos: {TASKS} tasks in {elapsed:.1f}s; faults injected: "
          f"{sum(faults.injected.values())} on Ark, "
          f"{sum(fake_world.files.faults.injected.values())} on the CDN")
    assert len(rows) == TASKS
    per_task: dict[str, list[str]] = {}
    for task_id, kind in events:
        per_task.setdefault(task_id, []).append(kind)
    assert set(per_task) == set(rows)
    assert all(len(kinds) == 1 for kinds in per_task.values())

    wrong = {}
    for task_id, row in rows.items():
        status, code = expected[task_id]
        if task_id in cancel and row.status == "completed":
            continue  # it finished before the delete arrived: also a correct ending
        if (row.status, row.error_code) != (status, code):
            wrong[task_id] = (row.prompt, row.status, row.error_code, row.error_message)
        assert per_task[task_id] == [row.status]
        if row.status == "completed":
            assert row.video_bytes and row.delivered_width == 320
            assert row.thumbnail_key and row.spritesheet_key
    assert not wrong, wrong

    # the sizes and lengths reached Ark as its own parameters
    sent = {(t.body["resolution"], t.body["ratio"], t.body["duration"])
            for t in ark.tasks.values()}
    assert sent <= {("720p", r, d) for r in ("16:9", "9:16") for d in (4, 5, 8)}
    # the key stayed on Ark; the CDN never saw it
    assert ark.recorder.authorizations() - {None} == {"Bearer ark-chaos-key"}
    assert fake_world.files.recorder.requests
    assert fake_world.files.recorder.authorizations() == {None}
    assert {"submit", "poll"} <= {call for call, _ in faults.injected}
    assert fake_world.files.faults.injected
    assert elapsed < 180
