"""Chaos: one harness, a list of provider setups. Each setup puts many tasks on fake
providers with ~20% of every call faulted (submit, poll, download; the gateway protocols,
Ark, Kling, fal + Replicate, Gemini). For every setup:

- every task ends exactly once, with the outcome its provider decided, read through the API
  (`GET /v1/videos/{id}`: status and `error.code`), and one terminal event;
- cancels: faults are scripted onto the first cancel calls (`Faults.script`), so they are
  certainly injected, and every cancelled task bound to a provider with a cancel still has
  its job withdrawn there (the engine retries a transient cancel);
- upstream jobs = accepted tasks: the first submit of every provider is handled but its
  answer is lost (`lost`), as a submit that timed out after the job was made. On a provider
  that takes an idempotency key (the gateway protocols: `Idempotency-Key`, the task id) the
  engine submits again on that same channel and gets the same job: no orphan. The hosted
  providers document no such key (fal's queue, Replicate's predictions, Gemini's
  predictLongRunning, Ark, Kling), so there the lost job is left running, unknown to vidgate:
  counted, at most one per lost answer (`lost`, or a `slow` submit whose job was made before
  the client gave up). Every other job is bound to exactly one task;
- each key reaches only its own provider, never a result host.
"""

from __future__ import annotations

import base64
import io
import os
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from PIL import Image

from fakes.ark import serve_ark
from fakes.clips import Clips
from fakes.fal import FakeFal
from fakes.faults import DOWNLOAD_TRANSIENT, KINDS, Faults
from fakes.fixtures import fake_world_fixture, sample_media_fixture  # noqa: F401
from fakes.gateway import FAST, channel_for, gateway
from fakes.gemini import GeminiWorld
from fakes.kling import ACCESS, SECRET, KlingWorld, kling_channel
from fakes.replicate import FakeReplicate
from fakes.serving import ServerThread
from fakes.sized import SizedVideos
from fakes.upstream import FileHost
from fakes.veo import veo_clips_fixture  # noqa: F401
from support import await_for
from vidgate.channels import ChannelConfig
from vidgate.store.schema import tasks

FAULT_RATE = 0.2
ALL_FAULTS = KINDS
# A 404 or a non-video body on a *download* is what an expired result looks like, and the
# gateway rightly gives up after a few of those ([expired] tests that); the faults on
# downloads are the transient kinds. Submits and polls get every kind, 404 flaps included.
CANCEL_FAULTS = ["503", "reset"]  # fewer than the engine's tries of one cancel
OK, MODERATION, FAILED = ("completed", None), ("failed", "moderation_blocked"), \
    ("failed", "upstream_error")
TIMEOUT, CANCELLED = ("failed", "timeout"), ("failed", "cancelled")


def faults(seed: int) -> Faults:
    """~20% of every call faulted; downloads only in the transient ways."""
    return Faults(seed=seed, kinds={"content": DOWNLOAD_TRANSIENT, "download": DOWNLOAD_TRANSIENT}
                  ).everywhere(FAULT_RATE, ALL_FAULTS)


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 36), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


IMAGE = "data:image/png;base64," + base64.b64encode(png()).decode()


@dataclass
class Provider:
    """One fake provider as the harness sees it."""

    channel: ChannelConfig
    faults: Faults
    jobs: Callable[[], dict[str, str | None]]  # job id -> the idempotency key it came with
    credentials_ok: Callable[[], bool]         # only this provider's own key reached it
    cancelled: Callable[[], list[str]] | None = None  # jobs withdrawn; None: no cancel API
    idempotent: bool = False                   # a retried submit with the key reuses the job
    retried: Callable[[], dict[str, int]] = dict  # idempotency key -> submits that carried it


@dataclass
class World:
    providers: list[Provider]
    result_faults: list[Faults]                # faults of the hosts results are fetched from
    result_hosts_clean: Callable[[], bool]     # used, and never given a credential
    checks: list[Callable[[dict], None]] = field(default_factory=list)  # rows -> asserts


@dataclass
class Setup:
    name: str
    tasks: int
    scenarios: list[tuple[str, int, tuple[str, str | None]]]
    build: Callable[[pytest.FixtureRequest, object], World]
    body: Callable[[random.Random, int], dict]
    frame: tuple[int, int]                     # what a completed task delivers


def job_id(upstream_id: str) -> str:
    """The fake's own job id inside a task's upstream id (`fal-ai/veo3/requests/<id>`,
    `text2video:<id>`, `models/<m>/operations/<id>`, or the id itself)."""
    return re.split(r"[/:]", upstream_id)[-1]


# ---- the setups ----------------------------------------------------------------------------

def build_protocols(request, tmp_path) -> World:
    world = request.getfixturevalue("fake_world")
    ups = [world.add(kind, key=f"sk-{kind}-secret", faults=faults(i))
           for i, kind in enumerate(("openai", "generations", "unified"))]
    world.files.faults.kinds["download"] = DOWNLOAD_TRANSIENT  # its middleware holds it
    world.files.faults.everywhere(FAULT_RATE)
    providers = [Provider(
        channel_for(u, f"chaos-{u.kind}"), u.faults,
        jobs=lambda u=u: {j.id: j.idempotency_key for j in list(u.jobs.values())},
        credentials_ok=lambda u=u: u.recorder.authorizations() - {None} == {f"Bearer {u.key}"},
        cancelled=(lambda u=u: u.cancels) if u.kind == "openai" else None,
        idempotent=True, retried=lambda u=u: dict(u.submits)) for u in ups]
    return World(providers, [world.files.faults],
                 lambda: bool(world.files.recorder.requests)
                 and world.files.recorder.authorizations() == {None})


def build_ark(request, tmp_path) -> World:
    world = request.getfixturevalue("fake_world")
    ark = serve_ark(world, tmp_path / "renders", key="ark-chaos-key", faults=faults(3),
                    chaos=True)
    world.files.faults.kinds["download"] = DOWNLOAD_TRANSIENT
    world.files.faults.rates["download"] = FAULT_RATE
    os.environ["VG_TEST_ARK_CHAOS"] = ark.key
    channel = ChannelConfig(name="chaos-ark", kind="ark", base_url=ark.url,
                            api_key_env="VG_TEST_ARK_CHAOS",
                            models={"sora-2": "seedance-1-5-pro-251215",
                                    "sora-2-pro": "dreamina-seedance-2-0-260128"}, **FAST)

    def sent_as_arks_own_parameters(_rows: dict) -> None:
        sent = {(t.body["resolution"], t.body["ratio"], t.body["duration"])
                for t in ark.tasks.values()}
        assert sent <= {("720p", r, d) for r in ("16:9", "9:16") for d in (4, 5, 8)}

    provider = Provider(
        channel, ark.faults, jobs=lambda: dict.fromkeys(list(ark.tasks)),
        credentials_ok=lambda: ark.recorder.authorizations() - {None} == {
            "Bearer ark-chaos-key"},
        cancelled=lambda: ark.cancels)
    return World([provider], [world.files.faults],
                 lambda: bool(world.files.recorder.requests)
                 and world.files.recorder.authorizations() == {None},
                 [sent_as_arks_own_parameters])


def build_kling(request, tmp_path) -> World:
    kling = KlingWorld(SizedVideos(tmp_path / "kling-videos"), ACCESS, SECRET)
    request.addfinalizer(kling.close)
    fake = kling.add(faults=faults(3))
    kling.files.faults.kinds["download"] = DOWNLOAD_TRANSIENT
    kling.files.faults.everywhere(FAULT_RATE)

    def named_by_kling_endpoint(rows: dict) -> None:
        for row in rows.values():
            if row.status == "completed":
                assert row.upstream_id.split(":")[0] in ("text2video", "image2video")

    # every request carried a JWT the fake verified, issued for the access key
    provider = Provider(kling_channel(fake, "chaos-kling"), fake.faults,
                        jobs=lambda: dict.fromkeys(list(fake.tasks)),
                        credentials_ok=lambda: not fake.rejected
                        and {c["iss"] for c in fake.claims} == {ACCESS})
    return World([provider], [kling.files.faults],
                 lambda: bool(kling.files.recorder.requests)
                 and kling.files.recorder.authorizations() == {None},
                 [named_by_kling_endpoint])


def build_hosted(request, tmp_path) -> World:
    thread = ServerThread()
    request.addfinalizer(thread.stop)
    cdn = FileHost(Faults(seed=3, kinds={"download": DOWNLOAD_TRANSIENT}).everywhere(FAULT_RATE))
    cdn.url = thread.serve(cdn.app())
    clips = Clips(tmp_path / "clips")
    fal = FakeFal(key="fal-chaos", cdn=cdn, clips=clips, faults=faults(1))
    fal.origin = thread.serve(fal.app())
    rep = FakeReplicate(key="r8-chaos", cdn=cdn, clips=clips, faults=faults(2))
    rep.origin = thread.serve(rep.app())

    def hosted(fake, kind: str, model: str, jobs: dict, auth: str) -> Provider:
        env = f"VG_CHAOS_{kind.upper()}"
        os.environ[env] = fake.key
        channel = ChannelConfig(name=f"chaos-{kind}", kind=kind, base_url=fake.url,
                                api_key_env=env, models={"sora-2": model}, **FAST)
        return Provider(channel, fake.faults, jobs=lambda: dict.fromkeys(list(jobs)),
                        credentials_ok=lambda: fake.recorder.authorizations() - {None} == {
                            f"{auth} {fake.key}"},
                        cancelled=lambda: fake.cancels)

    providers = [hosted(fal, "fal", "fal-ai/veo3", fal.requests, "Key"),
                 hosted(rep, "replicate", "google/veo-3", rep.predictions, "Bearer")]
    return World(providers, [cdn.faults],
                 lambda: bool(cdn.recorder.requests) and cdn.recorder.authorizations() == {None})


def build_gemini(request, tmp_path) -> World:
    world = GeminiWorld(request.getfixturevalue("veo_clips"))
    request.addfinalizer(world.close)
    api = world.add("gk-chaos-secret", faults=faults(5))
    os.environ["VG_CHAOS_GEMINI"] = api.key
    channel = ChannelConfig(name="chaos-gemini", kind="gemini", base_url=api.url,
                            api_key_env="VG_CHAOS_GEMINI",
                            models={"sora-2": "veo-3.1-generate-preview"}, **FAST)
    # the key travels in x-goog-api-key on the API's own origin (its downloads included),
    # never to the storage host a download may redirect to
    provider = Provider(channel, api.faults, jobs=lambda: dict.fromkeys(list(api.jobs)),
                        credentials_ok=lambda: api.log.credentials() == {(api.key, None)})
    return World([provider], [api.faults],  # results are downloaded from the API itself
                 lambda: bool(world.storage_log.requests)
                 and world.storage_log.credentials() == {(None, None)})


def protocols_body(rng: random.Random, i: int) -> dict:
    body = {"size": "1280x720", "seconds": "4", "model": rng.choice(("sora-2", "sora-2-pro"))}
    return {**body, "input_reference": {"image_url": IMAGE}} if i % 10 == 0 else body


def ark_body(rng: random.Random, i: int) -> dict:
    body = {"size": rng.choice(("1280x720", "720x1280")), "seconds": rng.choice(("4", "5", "8")),
            "model": rng.choice(("sora-2", "sora-2-pro"))}
    return {**body, "input_reference": {"image_url": IMAGE}} if i % 10 == 0 else body


def kling_body(_rng: random.Random, i: int) -> dict:
    body = {"size": "1280x720", "seconds": "5", "model": "sora-2"}
    return {**body, "input_reference": {"image_url": IMAGE}} if i % 10 == 0 else body


def eight_seconds(_rng: random.Random, _i: int) -> dict:
    return {"size": "1280x720", "seconds": "8", "model": "sora-2"}


SETUPS = [
    Setup("protocols", 500, [
        ("", 55, OK), ("[foreign]", 10, OK), ("[redirect]", 5, OK), ("[nopreview]", 5, OK),
        ("[slowdl]", 2, OK), ("[moderation]", 6, MODERATION), ("[fail]", 6, FAILED),
        ("[expired]", 6, FAILED), ("[stuck]", 3, TIMEOUT), ("[cancel] [stuck]", 2, CANCELLED),
    ], build_protocols, protocols_body, (320, 240)),  # the small sample
    Setup("ark", 150, [
        ("", 55, OK), ("[slowdl]", 2, OK), ("[moderation]", 6, MODERATION),
        ("[fail]", 6, FAILED), ("[expired]", 6, FAILED), ("[stuck]", 3, TIMEOUT),
        ("[cancel] [queued]", 3, CANCELLED),  # Ark cancels a task only while it is queued
    ], build_ark, ark_body, (320, 240)),  # the small sample
    Setup("kling", 150, [
        ("", 70, OK), ("[moderation]", 8, MODERATION), ("[fail]", 8, FAILED),
        ("[stuck]", 4, TIMEOUT), ("[cancel] [stuck]", 4, CANCELLED),  # Kling has no cancel
    ], build_kling, kling_body, (1280, 720)),
    Setup("hosted", 120, [
        ("", 70, OK), ("[moderation]", 10, MODERATION), ("[fail]", 10, FAILED),
        ("[stuck]", 5, TIMEOUT), ("[cancel] [stuck]", 5, CANCELLED),
    ], build_hosted, eight_seconds, (1280, 720)),
    Setup("gemini", 100, [
        ("", 50, OK), ("[inline]", 10, OK), ("[redirect]", 10, OK),
        ("[moderation]", 8, MODERATION), ("[refuse]", 6, MODERATION), ("[fail]", 8, FAILED),
        ("[stuck]", 4, TIMEOUT), ("[cancel] [stuck]", 4, CANCELLED),  # Gemini has no cancel
    ], build_gemini, eight_seconds, (1280, 720)),
]


# ---- the harness ---------------------------------------------------------------------------

@pytest.mark.parametrize("setup", SETUPS, ids=[s.name for s in SETUPS])
async def test_chaos(setup: Setup, request, tmp_path, database_url):
    world = setup.build(request, tmp_path)
    for provider in world.providers:
        provider.faults.script("submit", ["lost"])
        provider.faults.rates["cancel"] = 0.0  # only the scripted cancel faults: certain
        if provider.cancelled is not None:
            provider.faults.script("cancel", list(CANCEL_FAULTS))
    rng = random.Random(11)
    tags = [tag for tag, weight, _ in setup.scenarios for _ in range(weight)]
    outcome = {tag: result for tag, _, result in setup.scenarios}

    started = time.monotonic()
    async with gateway(tmp_path, database_url, [p.channel for p in world.providers]) as gw:
        expected: dict[str, tuple[str, str | None]] = {}
        stuck, cancel = [], []
        for i in range(setup.tasks):
            tag = rng.choice(tags)
            video = await gw.create(prompt=f"chaos {i} {tag}", **setup.body(rng, i))
            expected[video["id"]] = outcome[tag]
            if tag == "[stuck]":
                stuck.append(video["id"])
            elif tag.startswith("[cancel]"):
                cancel.append(video["id"])
        # Stuck jobs would wait two hours for the default deadline; give them seconds.
        async with gw.db.engine.begin() as conn:
            await conn.execute(tasks.update().where(tasks.c.id.in_(stuck))
                               .values(deadline_at=time.time() + 4))

        # Cancel while each such task is bound to its (never ending) upstream job.
        async def cancels_bound() -> bool:
            rows = await gw.rows()
            return all(rows[t].upstream_id for t in cancel)

        await await_for(cancels_bound, timeout=120, interval=0.2,
                        what="the tasks to cancel to be bound upstream")
        for video_id in cancel:
            r = await gw.client.delete(f"/v1/videos/{video_id}", headers=gw.headers())
            assert r.status_code == 200, r.text

        await await_for(gw.all_finished, timeout=240, interval=0.5,
                        what=f"every {setup.name} chaos task to finish")
        elapsed = time.monotonic() - started
        rows = await gw.rows()
        events = await gw.terminal_events()
        # status and error.code as a client reads them (deleted tasks are gone from the API)
        seen = {}
        for task_id in expected:
            if task_id in cancel:
                continue
            video = await gw.get(task_id)
            seen[task_id] = (video["status"], (video["error"] or {}).get("code"))

    injected = sum(sum(p.faults.injected.values()) for p in world.providers)
    print(f"\n{setup.name} chaos: {setup.tasks} tasks in {elapsed:.1f}s; faults injected: "
          f"{injected} on the providers, "
          f"{sum(sum(f.injected.values()) for f in world.result_faults)} on result hosts")

    # every task ended exactly once, as its provider decided, and the API says so
    assert len(rows) == setup.tasks
    per_task: dict[str, list[str]] = {}
    for task_id, kind in events:
        per_task.setdefault(task_id, []).append(kind)
    assert set(per_task) == set(rows)
    assert all(kinds == [rows[t].status] for t, kinds in per_task.items()), \
        {t: k for t, k in per_task.items() if k != [rows[t].status]}
    wrong = {t: (rows[t].prompt, got) for t, got in seen.items() if got != expected[t]}
    assert not wrong, wrong
    assert all((rows[t].status, rows[t].error_code) == CANCELLED for t in cancel)
    for row in rows.values():
        if row.status == "completed":
            assert (row.delivered_width, row.delivered_height) == setup.frame
            assert row.video_bytes and row.thumbnail_key and row.spritesheet_key
    assert {row.backend for row in rows.values() if row.upstream_id} == {
        p.channel.name for p in world.providers}
    for check in world.checks:
        check(rows)

    # keys stayed home; results came from their hosts without one
    for provider in world.providers:
        assert provider.credentials_ok(), provider.channel.name
    assert world.result_hosts_clean()

    # the faults really happened, on every kind of call
    for provider in world.providers:
        assert {"submit", "poll"} <= {call for call, _ in provider.faults.injected}
    assert any(call == "download" for f in world.result_faults for call, _ in f.injected)

    # cancel faults were injected and survived: every bound cancelled task was withdrawn
    for provider in world.providers:
        if provider.cancelled is None:
            continue
        mine = {job_id(rows[t].upstream_id) for t in cancel
                if rows[t].backend == provider.channel.name}
        if mine:
            assert all(provider.faults.injected[("cancel", k)] for k in CANCEL_FAULTS)
        assert mine <= set(provider.cancelled()), (provider.channel.name, mine)
    assert any(rows[t].backend == p.channel.name for t in cancel for p in world.providers
               if p.cancelled is not None) or all(p.cancelled is None for p in world.providers)

    # upstream jobs = accepted tasks, but for the lost answers a provider without an
    # idempotency key leaves behind (counted: at most one per lost answer)
    bound = {row.backend: set() for row in rows.values()}
    for row in rows.values():
        if row.upstream_id:
            bound[row.backend].add(job_id(row.upstream_id))
    for provider in world.providers:
        name = provider.channel.name
        jobs = provider.jobs()
        mine = bound.get(name, set())
        assert mine <= set(jobs), name
        orphans = set(jobs) - mine
        lost = provider.faults.injected[("submit", "lost")]
        assert lost == 1, name
        print(f"  {name}: {len(jobs)} upstream jobs, {len(mine)} bound tasks, "
              f"{len(orphans)} left by lost answers")
        if provider.idempotent:
            # the engine tried that channel again with the same key and got the same job
            assert not orphans, (name, orphans)
            assert any(v > 1 for v in provider.retried().values()), name
        else:
            # a `slow` submit loses its answer too when the job is made before the client
            # gives up (under load, its timer fires late)
            lost_answers = lost + provider.faults.injected[("submit", "slow")]
            assert len(orphans) <= lost_answers, (name, orphans, lost_answers)
