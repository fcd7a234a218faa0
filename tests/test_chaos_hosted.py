"""Chaos for the hosted kinds: tasks over a fal channel and a Replicate channel (and one CDN)
with ~20% of every call faulted. Every task must end, exactly once, with the outcome its
provider decided; each key reaches only its own provider, never the CDN."""

from __future__ import annotations

import os
import random
import time

from fakes.clips import Clips
from fakes.fal import FakeFal
from fakes.faults import Faults
from fakes.gateway import FAST, gateway
from fakes.replicate import FakeReplicate
from fakes.serving import ServerThread
from fakes.upstream import FileHost
from support import await_for
from vidgate.channels import ChannelConfig
from vidgate.store.schema import tasks

TASKS = 120
FAULT_RATE = 0.2
# downloads get the transient kinds only: a 404 there is what an expired result looks like
DOWNLOAD_FAULTS = ("500", "502", "503", "429", "slow", "reset")
SCENARIOS = [
    ("", 70, ("completed", None)),
    ("[moderation]", 10, ("failed", "moderation_blocked")),
    ("[fail]", 10, ("failed", "upstream_error")),
    ("[stuck]", 5, ("failed", "timeout")),
    ("[cancel]", 5, ("failed", "cancelled")),
]


def _faults(seed: int) -> Faults:
    return Faults(seed=seed, kinds={"download": DOWNLOAD_FAULTS}).everywhere(FAULT_RATE)


async def test_chaos_fal_and_replicate(tmp_path, database_url):
    thread = ServerThread()
    try:
        cdn = FileHost(_faults(3))
        cdn.url = thread.serve(cdn.app())
        clips = Clips(tmp_path / "clips")
        fal = FakeFal(key="fal-chaos", cdn=cdn, clips=clips, faults=_faults(1))
        fal.origin = thread.serve(fal.app())
        rep = FakeReplicate(key="r8-chaos", cdn=cdn, clips=clips, faults=_faults(2))
        rep.origin = thread.serve(rep.app())
        os.environ["VG_CHAOS_FAL"], os.environ["VG_CHAOS_REP"] = fal.key, rep.key
        channels = [
            ChannelConfig(name="chaos-fal", kind="fal", base_url=fal.url,
                          api_key_env="VG_CHAOS_FAL", models={"sora-2": "fal-ai/veo3"}, **FAST),
            ChannelConfig(name="chaos-replicate", kind="replicate", base_url=rep.url,
                          api_key_env="VG_CHAOS_REP", models={"sora-2": "google/veo-3"},
                          **FAST),
        ]
        rng = random.Random(11)
        tags = [tag for tag, weight, _ in SCENARIOS for _ in range(weight)]
        outcome = {tag: result for tag, _, result in SCENARIOS}
        async with gateway(tmp_path, database_url, channels) as gw:
            expected, stuck, cancel = {}, [], []
            for i in range(TASKS):
                tag = rng.choice(tags)
                video = await gw.create(prompt=f"chaos {i} {tag}", size="1280x720",
                                        seconds="8")
                expected[video["id"]] = outcome[tag]
                (stuck if tag == "[stuck]" else cancel if tag == "[cancel]" else []).append(
                    video["id"])
            async with gw.db.engine.begin() as conn:  # stuck jobs: seconds, not two hours
                await conn.execute(tasks.update().where(tasks.c.id.in_(stuck))
                                   .values(deadline_at=time.time() + 4))
            for video_id in cancel:
                r = await gw.client.delete(f"/v1/videos/{video_id}", headers=gw.headers())
                assert r.status_code == 200
            await await_for(gw.all_finished, timeout=240, interval=0.5,
                            what="every chaos task to finish")
            rows = await gw.rows()
            events = await gw.terminal_events()
    finally:
        thread.stop()

    per_task: dict[str, list[str]] = {}
    for task_id, kind in events:
        per_task.setdefault(task_id, []).append(kind)
    assert set(per_task) == set(rows) and len(rows) == TASKS
    assert all(len(kinds) == 1 for kinds in per_task.values())
    wrong = {}
    for task_id, row in rows.items():
        if task_id in cancel and row.status == "completed":
            continue  # it finished before the delete arrived: also a correct ending
        if (row.status, row.error_code) != expected[task_id]:
            wrong[task_id] = (row.prompt, row.status, row.error_code, row.error_message)
        if row.status == "completed":
            assert (row.delivered_width, row.delivered_height) == (1280, 720)
    assert not wrong, wrong
    assert {row.backend for row in rows.values() if row.upstream_id} == {
        "chaos-fal", "chaos-replicate"}

    assert fal.recorder.authorizations() - {None} == {f"Key {fal.key}"}
    assert rep.recorder.authorizations() - {None} == {f"Bearer {rep.key}"}
    assert cdn.recorder.requests and cdn.recorder.authorizations() == {None}
    for fake in (fal, rep):
        assert {"submit", "poll"} <= {call for call, _ in fake.faults.injected}
    assert cdn.faults.injected

    # cancels of tasks that were running upstream were forwarded there
    for fake, name in ((fal, "chaos-fal"), (rep, "chaos-replicate")):
        upstream_ids = {rows[t].upstream_id for t in cancel
                        if rows[t].backend == name and rows[t].status == "failed"}
        forwarded = {p for p in upstream_ids if p.rsplit("/", 1)[-1] in fake.cancels}
        assert forwarded or not upstream_ids, (name, upstream_ids, fake.cancels)
