"""Fail-over: refused submits move to the next channel; accepted jobs never move."""

from __future__ import annotations

import pytest

from fakes.faults import Faults
from fakes.fixtures import fake_world_fixture, sample_media_fixture  # noqa: F401
from fakes.gateway import channel_for, gateway
from support import await_for


async def test_refusing_first_priority_channel_fails_over_to_second(
        tmp_path, database_url, fake_world):
    first = fake_world.add("openai", key="sk-first")
    second = fake_world.add("generations", key="sk-second",
                            faults=Faults(rates={"poll": 0.5}, kinds={"poll": ("503", "reset")}))
    first.refuse_submits = True
    channels = [channel_for(first, "first", priority=10, failure_threshold=3,
                            cooldown_seconds=60),
                channel_for(second, "second", priority=0)]
    async with gateway(tmp_path, database_url, channels) as gw:
        # Four first: the engine may claim them together and submit them all before the
        # first refusal comes back, so the first channel may see all four (with twelve at
        # once it could see all twelve, which made this test fail now and then).
        ids = [(await gw.create(prompt=f"fail over {i}", size="1280x720"))["id"]
               for i in range(4)]
        await await_for(gw.all_finished, timeout=60, what="the first four to finish")
        ids += [(await gw.create(prompt=f"fail over {i}", size="1280x720"))["id"]
                for i in range(4, 12)]
        await await_for(gw.all_finished, timeout=60, what="all tasks to finish")
        rows = await gw.rows()

    assert {rows[i].status for i in ids} == {"completed"}
    assert {rows[i].backend for i in ids} == {"second"}
    # the first channel refused, its circuit opened after three refusals in a row, and no
    # later task was offered to it
    first_submits = [r for r in first.recorder.requests if r.method == "POST"]
    assert 3 <= len(first_submits) <= 4
    assert not first.jobs
    # each task was submitted once to the second channel, and half of its polls failed
    # without ever causing a resubmission
    assert len(second.jobs) == 12
    assert all(count == 1 for count in second.submits.values())
    assert sorted(second.submits) == sorted(ids)
    assert second.faults.injected


async def test_accepted_job_stays_on_its_channel_while_polls_fail(
        tmp_path, database_url, fake_world):
    first = fake_world.add("unified", key="sk-first",
                           faults=Faults(rates={"poll": 1.0}, kinds={"poll": ("500", "429")}))
    second = fake_world.add("openai", key="sk-second")
    channels = [channel_for(first, "first", priority=10), channel_for(second, "second")]
    async with gateway(tmp_path, database_url, channels) as gw:
        video = await gw.create(prompt="stay put", size="1280x720")

        async def polled_a_lot() -> bool:
            return len([r for r in first.recorder.requests if r.method == "GET"]) >= 5

        await await_for(polled_a_lot, timeout=30, what="several failed polls")
        assert (await gw.get(video["id"]))["status"] != "failed"
        first.faults.off()
        await await_for(gw.all_finished, timeout=30, what="the task to finish")
        row = (await gw.rows())[video["id"]]
    assert row.status == "completed" and row.backend == "first"
    assert len(first.jobs) == 1 and not second.jobs and not second.recorder.requests


async def test_all_channels_refusing_keeps_task_queued_then_it_completes(
        tmp_path, database_url, fake_world):
    a = fake_world.add("openai", key="sk-a")
    b = fake_world.add("unified", key="sk-b")
    a.refuse_submits = b.refuse_submits = True
    channels = [channel_for(a, "a"), channel_for(b, "b")]
    async with gateway(tmp_path, database_url, channels) as gw:
        video = await gw.create(prompt="wait for capacity", size="1280x720")

        async def refused_several_times() -> bool:
            posts = [r for u in (a, b) for r in u.recorder.requests if r.method == "POST"]
            return len(posts) >= 4

        await await_for(refused_several_times, timeout=30, what="repeated refusals")
        assert (await gw.get(video["id"]))["status"] == "queued"
        b.refuse_submits = False
        await await_for(gw.all_finished, timeout=30, what="the task to finish")
        row = (await gw.rows())[video["id"]]
    assert row.status == "completed" and row.backend == "b"


async def test_no_channel_for_model_size_or_seconds_is_400_and_writes_nothing(
        tmp_path, database_url, fake_world):
    up = fake_world.add("openai", key="sk-x")
    channels = [channel_for(up, "only-720p", models={"sora-2": "m"}, sizes=["1280x720"],
                            seconds=[4, 8])]
    async with gateway(tmp_path, database_url, channels) as gw:
        for body, what in [
            ({"model": "sora-2-pro", "size": "1280x720"}, "model"),
            ({"size": "1920x1080"}, "size"),
            ({"size": "1280x720", "seconds": "12"}, "seconds"),
        ]:
            r = await gw.client.post("/v1/videos", headers=gw.headers(),
                                     json={"prompt": "x", **body})
            assert r.status_code == 400, (what, r.text)
            assert r.json()["error"]["code"] == "no_available_channel"
        assert not await gw.rows()
        ok = await gw.create(prompt="fits", size="1280x720", seconds="8")
        assert ok["status"] == "queued"


@pytest.mark.parametrize("cap", [2])
async def test_in_flight_cap_is_respected(tmp_path, database_url, fake_world, cap):
    up = fake_world.add("openai", key="sk-cap", job_seconds=0.6)
    channels = [channel_for(up, "capped", max_in_flight=cap)]
    async with gateway(tmp_path, database_url, channels) as gw:
        for i in range(8):
            await gw.create(prompt=f"capped {i}", size="1280x720")
        peak = 0

        async def done_watching_peak() -> bool:
            nonlocal peak
            live = sum(1 for j in up.jobs.values() if up.state(j)[0] != "completed")
            peak = max(peak, live)
            return await gw.all_finished()

        await await_for(done_watching_peak, timeout=60, interval=0.02)
    assert len(up.jobs) == 8
    assert peak <= cap


@pytest.mark.parametrize("script", [["lost"], ["lost", "503", "lost"]])
async def test_a_lost_submit_answer_stays_on_its_idempotent_channel(
        tmp_path, database_url, fake_world, script):
    """The first channel makes the job but its answer is lost. The task is offered to that
    channel only (a plain refusal in between included), with the same Idempotency-Key, and
    gets that same job: nothing is made on the second channel."""
    first, second, row = await _one_task_over_two(tmp_path, database_url, fake_world, script)
    assert row.status == "completed"
    assert sum(first.faults.injected.values()) == len(script)
    assert (row.backend, row.upstream_id) == ("first", first.by_key[row.id].id)
    assert len(first.jobs) == 1 and not second.jobs
    # every lost submit and the last one reached it (a refused one never did), same key
    assert first.submits[row.id] == script.count("lost") + 1


async def test_after_three_lost_answers_the_task_may_move_on(tmp_path, database_url,
                                                             fake_world):
    """Pinning is bounded: after 3 lost answers a refusal lets the task fail over, and the
    first channel's job is the one orphan that leaves behind (counted, not hidden)."""
    first, second, row = await _one_task_over_two(tmp_path, database_url, fake_world,
                                                  ["lost"] * 3 + ["503"])
    assert (row.status, row.backend) == ("completed", "second")
    assert len(second.jobs) == 1
    assert list(first.by_key) == [row.id] and len(first.jobs) == 1  # the orphan


async def _one_task_over_two(tmp_path, database_url, fake_world, script: list[str]):
    """One task over an `openai` channel whose submits get `script`'s faults (priority 10)
    and a clean `unified` one: (first fake, second fake, the task's final row)."""
    first = fake_world.add("openai", key="sk-first", faults=Faults().script("submit", script))
    second = fake_world.add("unified", key="sk-second")
    channels = [channel_for(first, "first", priority=10), channel_for(second, "second")]
    async with gateway(tmp_path, database_url, channels) as gw:
        video = await gw.create(prompt="lost answer", size="1280x720")
        await await_for(gw.all_finished, timeout=60, what="the task to finish")
        return first, second, (await gw.rows())[video["id"]]
