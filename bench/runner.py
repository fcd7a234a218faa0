"""One benchmark run, start to finish: tools, fake upstream, each server in turn, the engine
phase, then results.json, RESULTS.md and the chart."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

from vidgate.backends.sandbox.sample import padded_mp4, render_sample

from . import machine, nginx, report, targets, tools, venvs, vidgate_db
from .context import LOAD_CORE, SERVER_CORE, Context, Sizes
from .phases import api, downloads, engine, postgres, processes
from .targets_check import evaluate

BENCH = Path(__file__).resolve().parent
PHASES = ("api", "downloads", "processes", "engine", "engine-callbacks", "postgres",
          "engine-postgres")
# `postgres` and `engine-postgres` need a PostgreSQL server of their own (and the latter
# about 75 minutes), so they run only when asked for.
DEFAULT_PHASES = ("api", "downloads", "processes", "engine", "engine-callbacks")
# Where each phase's figures go in results.json (a run of some phases keeps the others').
SECTIONS = {"api": ("api", "footprint"), "downloads": ("downloads",),
            "processes": ("processes",), "engine": ("engine",),
            "engine-callbacks": ("engine_callbacks",), "postgres": ("postgres",),
            "engine-postgres": ("engine_postgres", "engine_sqlite_scale")}
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/vidgate_bench"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="seconds per phase and small counts (the smoke test's mode)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default bench/out, or bench/out-quick)")
    parser.add_argument("--phases", default=",".join(DEFAULT_PHASES),
                        help=f"comma-separated subset of {','.join(PHASES)} (default: all "
                             "but postgres)")
    parser.add_argument("--postgres-url", default=os.environ.get("VIDGATE_BENCH_POSTGRES_URL",
                                                                 POSTGRES_URL),
                        help="the postgres and engine-postgres phases' database; DROPPED and "
                             "created again before each server (env VIDGATE_BENCH_POSTGRES_URL)")
    parser.add_argument("--baseline", type=Path, default=None, metavar="VIDGATE",
                        help="postgres phase: also measure this `vidgate` executable (another "
                             "build, e.g. main's tree) in the same run, as the 'before'")
    parser.add_argument("--no-litellm", action="store_true",
                        help="leave out the peer (default in --quick)")
    parser.add_argument("--litellm", action="store_true", help="include the peer in --quick")
    parser.add_argument("--no-install", action="store_true",
                        help="never apt-get/pip install; skip what is missing (not in CI)")
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    parser.add_argument("--engine-tasks", type=int, default=None,
                        help="override the engine phase's task count")
    parser.add_argument("--seconds", type=float, default=None,
                        help="override the length of each wrk measurement")
    parser.add_argument("--engine-delay", default=None, metavar="MIN,MAX",
                        help="override the fake upstream's job duration range (seconds)")
    parser.add_argument("--scale-tasks", type=int, default=None,
                        help="override the engine-postgres phase's task count (100,000)")
    parser.add_argument("--scale-delay", default=None, metavar="MIN,MAX",
                        help="override the engine-postgres phase's job duration range")
    return parser.parse_args(argv)


def pin_to_load_core() -> None:
    """The harness is load too: keep it off the server's core."""
    with contextlib.suppress(AttributeError, OSError):
        if len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(0, {LOAD_CORE})


class Phases:
    """Runs phases, keeping going after a failure so one broken phase does not hide the
    others' numbers; failures end up in results['errors'] and the exit code."""

    def __init__(self, results: dict) -> None:
        self.results = results

    def run(self, name: str, fn: Callable[[], object]) -> object | None:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            value = fn()
        except Exception as exc:  # record, go on with the next phase
            self.results.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            return None
        print(f"[bench] {name} done in {time.monotonic() - started:.1f}s", file=sys.stderr,
              flush=True)
        return value


@contextlib.contextmanager
def running(target: targets.Target) -> Iterator[targets.Target]:
    try:
        yield target
    finally:
        target.stop()


def footprint(ctx: Context, target: targets.Target) -> dict:
    time.sleep(ctx.sizes.settle_seconds)
    return {"ready_s": round(target.ready_s, 3),
            "idle_rss_mib": round(target.proc.rss() / 2**20, 1)}


def bench_vidgate(ctx: Context, phases: Phases, upstream: nginx.Nginx, wanted: set[str]
                  ) -> None:
    results = phases.results
    target = phases.run("vidgate start", lambda: targets.start_vidgate(
        ctx.work / "vidgate", upstream.base, core=SERVER_CORE))
    if target is None:
        return
    with running(target):
        results["footprint"]["vidgate"] = footprint(ctx, target)
        db_path = ctx.work / "vidgate" / "vidgate-data" / "vidgate.db"

        def in_flight() -> dict:
            return {"tasks_in_flight": vidgate_db.unfinished(db_path)}

        # status reads, then downloads, then creates: the creates leave thousands of jobs
        # in progress that the engine keeps polling, which must not weigh on the others
        has_wrk = ctx.tools.get("wrk") is not None
        status = None
        if "api" in wanted and has_wrk:
            status = phases.run("vidgate status", lambda: api.run(ctx, target, upstream,
                                                                  ("status",)))
        if "downloads" in wanted and has_wrk:
            out = phases.run("downloads", lambda: downloads.run(ctx, target, upstream))
            if out:
                results["downloads"] = out
        if "api" in wanted and has_wrk:
            create = phases.run("vidgate create", lambda: api.run(
                ctx, target, upstream, ("create",), before_create=in_flight))
            if status and create:
                results["api"]["vidgate"] = api.merge(status, create)
                results["footprint"]["vidgate"]["load_rss_mib"] = (
                    results["api"]["vidgate"]["rss_under_load"]["max_mib"])


def bench_vidgate_api_only(ctx: Context, phases: Phases, upstream: nginx.Nginx) -> None:
    """Creates once more with VIDGATE_ROLE=api (no engine in the process): the create
    endpoint's own throughput, which the create target is checked on (targets_check.py)."""
    target = phases.run("vidgate (API only) start", lambda: targets.start_vidgate(
        ctx.work / "vidgate-api-only", upstream.base, core=SERVER_CORE,
        extra_env={"VIDGATE_ROLE": "api"}))
    if target is None:
        return
    with running(target):
        out = phases.run("vidgate (API only) create",
                         lambda: api.run(ctx, target, upstream, ("create",)))
        if out:
            phases.results["api"]["vidgate_api_only"] = out


def bench_litellm(ctx: Context, phases: Phases, upstream: nginx.Nginx, wanted: set[str]
                  ) -> None:
    results = phases.results
    target = phases.run("litellm start", lambda: targets.start_litellm(
        ctx.work / "litellm", upstream.base, core=SERVER_CORE))
    if target is None:
        return
    with running(target):
        results["footprint"]["litellm"] = footprint(ctx, target)
        if "api" in wanted and ctx.tools.get("wrk"):
            out = phases.run("litellm api", lambda: api.run(ctx, target, upstream))
            if out:
                results["api"]["litellm"] = out
                results["footprint"]["litellm"]["load_rss_mib"] = out["rss_under_load"]["max_mib"]
        if "downloads" in wanted and ctx.tools.get("wrk"):
            out = phases.run("litellm downloads", lambda: downloads.run_litellm(ctx, target))
            if out and results.get("downloads"):
                results["downloads"].update(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pin_to_load_core()
    wanted = {p.strip() for p in args.phases.split(",") if p.strip()}
    unknown = wanted - set(PHASES)
    if unknown:
        raise SystemExit(f"unknown phases: {', '.join(sorted(unknown))}")
    sizes = Sizes.quick() if args.quick else Sizes.full()
    overrides: dict = {}
    if args.engine_tasks:
        overrides["engine_tasks"] = args.engine_tasks
    if args.seconds:
        overrides["seconds"] = args.seconds
    if args.engine_delay:
        low, high = (float(x) for x in args.engine_delay.split(","))
        overrides["engine_delay"] = (low, high)
    if args.scale_tasks:
        overrides["scale_tasks"] = args.scale_tasks
    if args.scale_delay:
        low, high = (float(x) for x in args.scale_delay.split(","))
        overrides["scale_delay"] = (low, high)
    sizes = dataclasses.replace(sizes, **overrides)
    with_litellm = (args.litellm or not args.quick) and not args.no_litellm
    out_dir = (args.out or BENCH / ("out-quick" if args.quick else "out")).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    install = not args.no_install

    try:
        found = tools.ensure(["taskset", "nginx", "wrk"], install=install)
    except tools.MissingTool as exc:
        print(f"[bench] FAILED: {exc}", file=sys.stderr)
        return 2
    ctx = Context(sizes, out_dir, found, args.quick)
    if found.get("taskset") is None:
        print("[bench] FAILED: taskset is required (util-linux)", file=sys.stderr)
        return 2
    results: dict = {
        "quick": args.quick, "command": ("bench/run " + shlex.join(argv or sys.argv[1:])).strip(),
        "config": {**dataclasses.asdict(sizes), "concurrency": list(sizes.concurrency),
                   "server_core": SERVER_CORE, "load_core": LOAD_CORE},
        "api": {}, "downloads": {}, "footprint": {}, "engine": {}, "engine_callbacks": {},
        "engine_postgres": {}, "engine_sqlite_scale": {}, "skipped": {}, "errors": {},
    }
    for tool in ("nginx", "wrk"):
        if found.get(tool) is None:
            for phase in ("api", "downloads"):
                if phase in wanted:
                    results["skipped"][phase] = f"{tool} not installed (apt-get install {tool})"
    if with_litellm and not targets.litellm_available():
        if install:
            try:
                venvs.litellm()
            except subprocess.CalledProcessError as exc:
                results["errors"]["litellm install"] = str(exc)
        if not targets.litellm_available():
            results["skipped"]["litellm"] = f"not installed ({venvs.LITELLM_SPEC})"
            with_litellm = False
    if not with_litellm and "litellm" not in results["skipped"]:
        results["skipped"]["litellm"] = "left out (--quick or --no-litellm)"

    fresh_work_dir(ctx.work)
    results["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    phases = Phases(results)
    sample = render_sample(ctx.work / "media", "bench upstream result")
    big = padded_mp4(sample.video, sample.folder / "big.mp4", sizes.big_bytes)
    needs_nginx = wanted & {"api", "downloads", "postgres"}
    if needs_nginx and found.get("nginx"):
        upstream = phases.run("nginx start", lambda: nginx.start(
            found["nginx"] or "nginx", ctx.work / "nginx", sample.folder, big.name, LOAD_CORE))
        if upstream is not None:
            try:
                if wanted & {"api", "downloads"}:
                    bench_vidgate(ctx, phases, upstream, wanted)
                if "api" in wanted and found.get("wrk") and not args.quick:
                    bench_vidgate_api_only(ctx, phases, upstream)
                if with_litellm:
                    bench_litellm(ctx, phases, upstream, wanted)
                if "postgres" in wanted and found.get("wrk"):
                    out = phases.run("postgres", lambda: postgres.run(
                        ctx, upstream, args.postgres_url, args.baseline))
                    if out:
                        results["postgres"] = out
            finally:
                upstream.stop()
    if "processes" in wanted and found.get("wrk"):
        out = phases.run("processes", lambda: processes.run(ctx, sizes.seconds))
        if out:
            results["processes"] = out
    if "engine" in wanted:
        out = phases.run("engine", lambda: engine.run(ctx, sample))
        if out:
            results["engine"] = out
    if "engine-callbacks" in wanted:
        out = phases.run("engine-callbacks", lambda: engine.run(ctx, sample, callbacks=True))
        if out:
            results["engine_callbacks"] = out
    if "engine-postgres" in wanted:
        # first what it is checked against: SQLite's engine on the same schedule
        same_schedule = dataclasses.replace(ctx, sizes=sizes.at_scale(sizes.scale_compare_tasks))
        out = phases.run("engine-postgres: SQLite on the same schedule", lambda: engine.run(
            same_schedule, sample, name="engine-sqlite-scale"))
        if out:
            results["engine_sqlite_scale"] = out
        at_scale = dataclasses.replace(ctx, sizes=sizes.at_scale())
        out = phases.run("engine-postgres", lambda: engine.run(
            at_scale, sample, database_url=args.postgres_url, workers=sizes.scale_workers,
            name="engine-postgres"))
        if out:
            results["engine_postgres"] = out

    results["machine"] = machine.describe(found)
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["finished_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results["commands"] = commands(args)
    if not args.quick:
        carry_over(results, wanted, BENCH / "results.json")
    results["targets"] = [c.as_dict() for c in evaluate(results)]
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    md = out_dir / "RESULTS.md"
    if not args.quick:
        md = BENCH / "RESULTS.md"
    if not args.no_chart:
        phases.run("chart", lambda: draw_chart(out_dir / "results.json", md.parent / "chart.png",
                                               install))
    if not args.quick:
        (BENCH / "results.json").write_text(json.dumps(results, indent=2))
    report.write(results, md)
    print(f"[bench] wrote {md}", file=sys.stderr)
    for check in evaluate(results):
        mark = {True: "met", False: "MISSED", None: "not measured"}[check.met]
        print(f"  {mark:>12}  {check.name}: {check.value} (goal {check.goal})", file=sys.stderr)
    if results["errors"]:
        print(f"[bench] errors: {json.dumps(results['errors'], indent=2)}", file=sys.stderr)
        return 1
    return 0


def carry_over(results: dict, wanted: set[str], previous: Path) -> None:
    """A run of some phases (the default leaves out postgres) keeps the other phases'
    figures from the last recorded run, and says so: RESULTS.md names the run each section
    came from."""
    if not previous.is_file():
        return
    old = json.loads(previous.read_text())
    origins = old.get("carried_over") or {}
    kept = {}
    for phase in PHASES:
        for section in SECTIONS[phase] if phase not in wanted else ():
            if old.get(section):
                results[section] = old[section]
                kept[section] = origins.get(section) or {
                    "finished_at": old.get("finished_at"), "command": old.get("command"),
                    "load_average_start": old.get("load_average_start")}
    if kept:
        results["carried_over"] = kept


def fresh_work_dir(work: Path) -> None:
    """Every server starts from an empty data dir: a previous run's database (with its
    thousands of unfinished tasks) would otherwise be resumed and polled. The rendered
    sample media is kept."""
    work.mkdir(parents=True, exist_ok=True)
    for child in work.iterdir():
        if child.name != "media":
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()


def draw_chart(results_json: Path, dest: Path, install: bool) -> None:
    python = BENCH / ".venv" / "bin" / "python"
    if install:
        python = venvs.chart()
    if not python.is_file():
        raise RuntimeError("bench/.venv with matplotlib is missing (run bench/run once)")
    subprocess.run([str(python), "-m", "bench.chart", str(results_json), str(dest)],
                   check=True, cwd=BENCH.parent)


def commands(args: argparse.Namespace) -> list[str]:
    run = "bench/run" + (" --quick" if args.quick else "")
    return [
        "# the whole benchmark (installs nginx, wrk, LiteLLM and matplotlib when missing):",
        run,
        "# the same without the peer, or one phase at a time:",
        "bench/run --no-litellm",
        "bench/run --phases api        # api | downloads | engine | engine-callbacks",
        "bench/run --phases postgres --postgres-url postgresql+asyncpg://postgres@127.0.0.1"
        ":5432/NAME [--baseline OTHER_TREE/.venv/bin/vidgate]",
        "# the engine at scale, with SQLite's engine on the same schedule it is compared with:",
        "bench/run --phases engine-postgres --postgres-url postgresql+asyncpg://"
        "postgres@127.0.0.1:5432/NAME",
        "# what the server under test and the load are, exactly:",
        "taskset -c 0 .venv/bin/vidgate serve --port P    # VIDGATE_CONFIG=bench/out/work/"
        "vidgate/vidgate.yaml",
        "taskset -c 0 bench/.venv-litellm/bin/litellm --config bench/out/work/litellm/"
        "litellm.yaml --port P",
        "taskset -c 1 wrk -t1 -c{1,32} -d10s -s bench/out/work/wrk/<server>/<op>.lua URL",
    ]
