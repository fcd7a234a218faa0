"""Engine scale: many tasks in flight on a fake upstream that completes each after a random
delay; how long vidgate takes to report each completion, and the CPU its process used.

Lag of one task = the moment vidgate's `completed` event row appeared (what every read then
serves) minus the moment the fake upstream started answering `completed` for its job.

Two modes: polling (an `openai` channel, the `engine` phase) and provider callbacks (a
`replicate` channel with VIDGATE_PUBLIC_URL set; the fake posts each job's signed webhook
the moment it completes and polling falls back to the channel's `callback_poll_seconds`;
the `engine-callbacks` phase).

The database is a parameter: by default the engine runs inside `vidgate serve` on its SQLite
file; with `database_url` (PostgreSQL, a database of the run's own, recreated) and `workers`,
`vidgate serve` runs with VIDGATE_ROLE=api and that many `vidgate worker` processes follow
the tasks, the layout of a scaled-out deployment:

    .venv/bin/python -m bench.phases.engine --database postgresql+asyncpg://... --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from vidgate.backends.sandbox.sample import SampleMedia, render_sample

from .. import client, procs, targets, tools, vidgate_db, vidgate_pg
from ..context import LOAD_CORE, SERVER_CORE, Context, Sizes

ROOT = Path(__file__).resolve().parents[2]


WEBHOOK_SECRET = "whsec_" + "YmVuY2gtd2ViaG9vay1zZWNyZXQtMDEyMzQ1"  # the fake's Replicate key
CALLBACK_POLL_SECONDS = 60.0  # the channel default: the fallback when a callback is lost


def start_fake(ctx: Context, sample: SampleMedia, run_dir: Path, callbacks: bool = False
               ) -> tuple[procs.Proc, str]:
    port = procs.free_port()
    lo, hi = ctx.sizes.engine_delay
    mode = ["--protocol", "replicate", "--webhook-secret", WEBHOOK_SECRET] if callbacks else []
    proc = procs.start("fake-upstream", [
        sys.executable, "-m", "bench.fake_upstream", "--port", str(port),
        "--media", str(sample.folder), "--delay-min", str(lo), "--delay-max", str(hi), *mode,
    ], core=LOAD_CORE, log_dir=run_dir, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    procs.wait_http(proc, f"{base}/_bench/healthz", timeout=30)
    return proc, base


def engine_yaml(upstream: str, poll_min: float, poll_max: float) -> str:
    """One `openai` channel on the fake; polls start at `poll_min` and back off to
    `poll_max` (the channel defaults are 2 s and 20 s)."""
    return json.dumps({"channels": [{
        "name": "fake", "kind": "openai", "base_url": f"{upstream}/v1",
        "models": {"sora-2": "sora-2"}, "poll_min_seconds": poll_min,
        "poll_max_seconds": poll_max, "max_concurrent_requests": 32,
    }]}, indent=2)


def callbacks_yaml(upstream: str) -> str:
    """One `replicate` channel on the fake, called back; polls only as the fallback."""
    return json.dumps({"channels": [{
        "name": "fake", "kind": "replicate", "base_url": f"{upstream}/v1",
        "models": {"sora-2": "bench/video"}, "sizes": ["1280x720"], "seconds": [4],
        "webhook_secret_env": "BENCH_WEBHOOK_SECRET", "max_concurrent_requests": 32,
        "callback_poll_seconds": CALLBACK_POLL_SECONDS,
    }]}, indent=2)


async def _create_all(base: str, auth: dict[str, str], count: int, concurrency: int
                      ) -> tuple[list[str], int]:
    """Create `count` tasks with `concurrency` clients; (ids, failures)."""
    ids: list[str] = []
    failures = 0
    todo = iter(range(count))
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=auth, limits=limits,
                                 timeout=60) as http:
        async def worker() -> None:
            nonlocal failures
            for _ in todo:
                for _attempt in range(3):  # a kept-alive connection the server just closed
                    try:
                        response = await http.post("/v1/videos", json=client.CREATE_BODY)
                        break
                    except httpx.TransportError:
                        response = None
                if response is not None and response.status_code == 200:
                    ids.append(response.json()["id"])
                else:
                    failures += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids, failures


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _peak_in_flight(records: list[dict], seen: dict[str, float]) -> int:
    """Most jobs at once that the upstream had accepted and vidgate had not yet reported."""
    events = [(r["submitted"], 1) for r in records]
    events += [(seen[r["task_id"]], -1) for r in records if r["task_id"] in seen]
    peak = current = 0
    for _, delta in sorted(events):
        current += delta
        peak = max(peak, current)
    return peak


def _cpu_by_process(api: procs.Proc | None, fake: procs.Proc, engines: float
                    ) -> dict[str, float]:
    busy, capacity = procs.machine_cpu_seconds()
    harness = os.times()
    return {"engines": engines, "api": api.cpu() if api else 0.0, "fake_upstream": fake.cpu(),
            "postgresql": procs.named_cpu_seconds("postgres"),
            "harness": harness.user + harness.system,
            "machine_busy": busy, "machine_capacity": capacity}


def _start_workers(run_dir: Path, vidgate: targets.Target, count: int) -> list[procs.Proc]:
    """`count` `vidgate worker`s with the API server's environment (database, data, config)."""
    env = {**vidgate.env, "VIDGATE_ROLE": "all"}
    return [procs.start(f"worker-{n}", [str(targets.vidgate_bin()), "worker"], core=None,
                        log_dir=run_dir, env=env) for n in range(count)]


def run(ctx: Context, sample: SampleMedia, callbacks: bool = False,
        database_url: str | None = None, workers: int = 0, name: str | None = None) -> dict:
    """`name`: the run's folder under the work folder (default: the phase's name)."""
    sizes = ctx.sizes
    run_dir = ctx.work / (name or ("engine-callbacks" if callbacks else "engine"))
    fake, fake_base = start_fake(ctx, sample, run_dir, callbacks)
    vidgate = None
    engines: list[procs.Proc] = []
    database = {}
    if database_url:
        vidgate_pg.recreate(database_url)
        database["VIDGATE_DATABASE_URL"] = database_url
    if workers:
        database["VIDGATE_ROLE"] = "api"
    try:
        if callbacks:
            port = procs.free_port()
            vidgate = targets.start_vidgate(
                run_dir, fake_base, core=SERVER_CORE, port=port,
                config_text=callbacks_yaml(fake_base),
                extra_env={"VIDGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
                           "BENCH_WEBHOOK_SECRET": WEBHOOK_SECRET, **database})
        else:
            vidgate = targets.start_vidgate(
                run_dir, fake_base, core=SERVER_CORE,
                config_text=engine_yaml(fake_base, sizes.engine_poll_min, sizes.engine_poll),
                extra_env=database)
        engines = _start_workers(run_dir, vidgate, workers)
        followers = engines or [vidgate.proc]  # the processes running an engine

        def engine_cpu() -> float:
            return sum(p.cpu() for p in followers)

        db_path = run_dir / "vidgate-data" / "vidgate.db"
        watcher_of = (vidgate_pg.PgCompletionWatcher(database_url) if database_url
                      else vidgate_db.CompletionWatcher(db_path))
        cpu_start, engine_start = vidgate.proc.cpu(), engine_cpu()
        started = time.monotonic()
        with watcher_of as watcher:
            ids, failures = asyncio.run(_create_all(vidgate.base, vidgate.auth,
                                                    sizes.engine_tasks,
                                                    sizes.create_concurrency))
            created_s = time.monotonic() - started
            engine_created = engine_cpu()
            api = vidgate.proc if engines else None  # else the API is the engine
            where_before = _cpu_by_process(api, fake, engine_created)
            budget = created_s + sizes.engine_delay[1] + 4 * sizes.engine_poll + 120
            wanted = set(ids)
            while time.monotonic() - started < budget and not wanted <= watcher.seen.keys():
                time.sleep(0.2)
            wall_s = time.monotonic() - started
            cpu_end, engine_end = vidgate.proc.cpu(), engine_cpu()
            where_after = _cpu_by_process(api, fake, engine_end)
            rss_mib = vidgate.proc.rss() / 2**20
        db_mib = (vidgate_pg.size_mib(database_url) if database_url
                  else db_path.stat().st_size / 2**20)
        status, records = client.call("GET", f"{fake_base}/_bench/jobs", {})
        if status != 200:
            raise RuntimeError(f"fake upstream records answered {status}")
        mine = [r for r in records if r["task_id"] in wanted]
        lags = [watcher.seen[r["task_id"]] - r["done_at"] for r in mine
                if r["task_id"] in watcher.seen]
        polls = [r["polls"] for r in mine]
        jobs_per_task = Counter(r["task_id"] for r in mine)
        follow_s = max(wall_s - created_s, 1e-9)
        extra = {}
        if callbacks:
            answers = [r.get("called_back") for r in mine]
            extra = {"mode": "callbacks", "callback_poll_s": CALLBACK_POLL_SECONDS,
                     "callbacks_accepted": sum(1 for a in answers if a == 200),
                     "callbacks_refused": sum(1 for a in answers if a not in (None, 200))}
        if workers:
            extra["api_cpu_seconds_total"] = round(cpu_end - cpu_start, 2)
        if database_url:
            extra["tasks_table"] = vidgate_pg.tasks_table_facts(database_url)
        return {
            **extra,
            "database": "postgresql" if database_url else "sqlite",
            "engine_processes": workers or 1,
            "tasks": sizes.engine_tasks,
            "created": len(ids),
            "create_failures": failures,
            "completed": len(lags),
            "not_completed": len(wanted) - len(wanted & watcher.seen.keys()),
            "duplicated_submits": sum(n - 1 for n in jobs_per_task.values() if n > 1),
            "peak_in_flight": _peak_in_flight(mine, watcher.seen),
            "poll_interval_s": sizes.engine_poll,
            "poll_interval_min_s": sizes.engine_poll_min,
            "upstream_delay_s": list(sizes.engine_delay),
            "create_seconds": round(created_s, 2),
            "create_rps": round(len(ids) / created_s, 1) if created_s else 0.0,
            "wall_seconds": round(wall_s, 2),
            "lag_p50_s": round(_percentile(lags, 50), 3),
            "lag_p99_s": round(_percentile(lags, 99), 3),
            "lag_max_s": round(max(lags), 3) if lags else float("nan"),
            "lag_mean_s": round(statistics.fmean(lags), 3) if lags else float("nan"),
            "polls_per_task": round(statistics.fmean(polls), 2) if polls else 0.0,
            "cpu_seconds_total": round(engine_end - engine_start, 2),
            "cpu_seconds_creating": round(engine_created - engine_start, 2),
            "cpu_seconds_following": round(engine_end - engine_created, 2),
            "cpu_share_following": round((engine_end - engine_created) / follow_s, 3),
            "cpu_seconds_per_1000_followed": round(
                1000 * (engine_end - engine_created) / max(len(lags), 1), 2),
            # where the machine's CPU went while following ("api" is 0 when the API process
            # is the engine: its CPU is under "engines")
            "cpu_following_by_process": {
                k: round(where_after[k] - where_before[k], 1) for k in where_after},
            "rss_end_mib": round(rss_mib, 1),
            "database_mib": round(db_mib, 1),
        }
    finally:
        for proc in engines:
            proc.stop(timeout=30)
        if vidgate is not None:
            vidgate.stop()
        fake.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the engine phase on its own")
    parser.add_argument("--database", help="PostgreSQL URL of a database of your own "
                                           "(dropped and created again); default SQLite")
    parser.add_argument("--workers", type=int, default=0,
                        help="`vidgate worker` processes (0: the engine in `vidgate serve`)")
    parser.add_argument("--tasks", type=int)
    parser.add_argument("--delay", metavar="MIN,MAX",
                        help="the upstream completes each job after U(MIN, MAX) seconds")
    parser.add_argument("--poll", metavar="MIN,MAX",
                        help="the channel's first poll interval, backing off to MAX seconds")
    parser.add_argument("--callbacks", action="store_true",
                        help="the engine-callbacks mode (a called-back replicate channel)")
    parser.add_argument("--out", type=Path, default=Path("bench/out-engine"))
    args = parser.parse_args()
    sizes = Sizes.full()
    if args.tasks:
        sizes = dataclasses.replace(sizes, engine_tasks=args.tasks)
    if args.delay:
        low, high = (float(x) for x in args.delay.split(","))
        sizes = dataclasses.replace(sizes, engine_delay=(low, high))
    if args.poll:
        first, longest = (float(x) for x in args.poll.split(","))
        sizes = dataclasses.replace(sizes, engine_poll_min=first, engine_poll=longest)
    found = tools.ensure(["taskset"], install=False)
    context = Context(sizes, args.out.resolve(), found, quick=False)
    media = render_sample(context.work / "media", "bench upstream result")
    print(json.dumps(run(context, media, callbacks=args.callbacks, database_url=args.database,
                         workers=args.workers), indent=2))
