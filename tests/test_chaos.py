"""Chaos: 500 tasks over three fake channels (one per protocol) with ~20% of every call
faulted. Every task must end, exactly once, with the outcome its upstream decided; no key
may ever reach a host other than its own channel's."""

from __future__ import annotations

import base64
import io
import random
import time

from PIL import Image

from fakes.faults import Faults
from fakes.fixtures import fake_world_fixture, sample_media_fixture  # noqa: F401
from fakes.gateway import channel_for, gateway
from support import await_for
from vidgate.store.schema import tasks

TASKS = 500
FAULT_RATE = 0.2
# A 404 or a non-video body on a *download* is what an expired result looks like, and the
# gateway rightly gives up after a few of those ([expired] tests that); the faults on
# downloads are the transient kinds. Submits and polls get every kind, 404 flaps included.
DOWNLOAD_FAULTS = ("500", "502", "503", "429", "slow", "reset")

# tag in the prompt -> what the client must finally see (status, error.code)
SCENARIOS = [
    ("", 55, ("completed", None)),
    ("[foreign]", 10, ("completed", None)),
    ("[redirect]", 5, ("completed", None)),
    ("[nopreview]", 5, ("completed", None)),
    ("[slowdl]", 2, ("completed", None)),
    ("[moderation]", 6, ("failed", "moderation_blocked")),
    ("[fail]", 6, ("failed", "upstream_error")),
    ("[expired]", 6, ("failed", "upstream_error")),
    ("[stuck]", 3, ("failed", "timeout")),
    ("[cancel]", 2, ("failed", "cancelled")),
]


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 36), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


async def test_chaos_500_tasks_three_protocols(tmp_path, database_url, fake_world):
    rng = random.Random(7)
    def faults(seed: int) -> Faults:
        return Faults(seed=seed, kinds={"content": DOWNLOAD_FAULTS,
                                        "download": DOWNLOAD_FAULTS}).everywhere(FAULT_RATE)

    upstreams = [
        fake_world.add(kind, key=f"sk-{kind}-secret", faults=faults(i))
        for i, kind in enumerate(("openai", "generations", "unified"))
    ]
    fake_world.files.faults.kinds["download"] = DOWNLOAD_FAULTS  # its middleware holds it
    fake_world.files.faults.everywhere(FAULT_RATE)
    channels = [channel_for(u, f"chaos-{u.kind}") for u in upstreams]
    image = "data:image/png;base64," + base64.b64encode(_png()).decode()

    started = time.monotonic()
    async with gateway(tmp_path, database_url, channels) as gw:
        expected: dict[str, tuple[str, str | None]] = {}
        stuck, cancel = [], []
        tags = [tag for tag, weight, _ in SCENARIOS for _ in range(weight)]
        outcome = {tag: result for tag, _, result in SCENARIOS}
        for i in range(TASKS):
            tag = rng.choice(tags)
            body = {"prompt": f"chaos {i} {tag}", "size": "1280x720", "seconds": "4",
                    "model": rng.choice(("sora-2", "sora-2-pro"))}
            if i % 10 == 0:
                body["input_reference"] = {"image_url": image}
            video = await gw.create(**body)
            expected[video["id"]] = outcome[tag]
            if tag == "[stuck]":
                stuck.append(video["id"])
            if tag == "[cancel]":
                cancel.append(video["id"])
        # Stuck jobs would wait two hours for the default deadline; give them seconds.
        async with gw.db.engine.begin() as conn:
            await conn.execute(tasks.update().where(tasks.c.id.in_(stuck))
                               .values(deadline_at=time.time() + 4))
        for video_id in cancel:
            r = await gw.client.delete(f"/v1/videos/{video_id}", headers=gw.headers())
            assert r.status_code == 200

        await await_for(gw.all_finished, timeout=240, interval=0.5,
                        what="every chaos task to finish")
        elapsed = time.monotonic() - started
        rows = await gw.rows()
        events = await gw.terminal_events()

    print(f"\nchaos: {TASKS} tasks in {elapsed:.1f}s; faults injected: "
          f"{sum(sum(u.faults.injected.values()) for u in upstreams)} upstream, "
          f"{sum(fake_world.files.faults.injected.values())} file host")

    # every task is terminal, with exactly one terminal event
    assert len(rows) == TASKS
    per_task: dict[str, list[str]] = {}
    for task_id, kind in events:
        per_task.setdefault(task_id, []).append(kind)
    assert set(per_task) == set(rows)
    assert all(len(kinds) == 1 for kinds in per_task.values()), \
        {t: k for t, k in per_task.items() if len(k) != 1}

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

    # every kind took part, and the binding is recorded
    bound = {row.backend for row in rows.values() if row.upstream_id}
    assert bound == {ch.name for ch in channels}

    # no credential ever reached a host other than its own channel's
    for upstream in upstreams:
        seen = upstream.recorder.authorizations() - {None}
        assert seen == {f"Bearer {upstream.key}"}, (upstream.kind, seen)
    assert fake_world.files.recorder.requests, "the foreign host was never used"
    assert fake_world.files.recorder.authorizations() == {None}

    # the faults really happened, on every kind of call
    for upstream in upstreams:
        calls = {call for call, _ in upstream.faults.injected}
        assert {"submit", "poll", "download" if upstream.kind != "openai" else "content"} <= calls
    # cancels were forwarded upstream on the protocol that has them
    openai = upstreams[0]
    cancelled_there = [t for t in cancel if rows[t].backend == channels[0].name
                       and rows[t].status == "failed"]
    if cancelled_there:
        assert openai.cancels
    assert elapsed < 240
