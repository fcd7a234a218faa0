"""Many API processes: status reads, then creates, with `vidgate serve` and
`vidgate serve --workers 2`, measured one after the other in the same run, and the ratios.

Both servers run with VIDGATE_ROLE=api (no engine: the requests are the only work, the tasks
stay queued) on an SQLite file, where the creates of both processes take turns on its one
writer. They run unpinned, so the kernel may use both cores; wrk runs pinned to the load
core. On a 2-core machine two processes therefore share core 1 with wrk: the
ratio is what that machine allows, not what two free cores would give (the record says so).

    .venv/bin/python -m bench.phases.processes [--seconds 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

from .. import client, targets, tools, wrk
from ..context import LOAD_CORE, Context, Sizes

SEED_TASKS = 64
UNUSED_UPSTREAM = "http://127.0.0.1:9"  # channels are declared but never asked (no engine)


def _listeners(port: int) -> int:
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True)
    return len(out.stdout.splitlines())


def _measure(ctx: Context, workers: int, seconds: float, connections: int) -> dict:
    run_dir = ctx.work / f"processes-{workers}"
    target = targets.start_vidgate(run_dir, UNUSED_UPSTREAM, core=None,
                                   extra_env={"VIDGATE_ROLE": "api"},
                                   serve_args=("--workers", str(workers)) if workers > 1 else ())
    try:
        port = int(target.base.rsplit(":", 1)[1])
        deadline = time.monotonic() + 120
        while _listeners(port) < workers:  # the supervisor answers once one is up
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {_listeners(port)} of {workers} processes listen")
            time.sleep(0.2)
        ids = [client.create(target.base, target.auth)["id"] for _ in range(SEED_TASKS)]
        reqs = [wrk.Req("GET", f"/v1/videos/{i}", target.auth) for i in ids]
        wrk.run(ctx.tool("wrk"), target.base, reqs, connections=connections, seconds=1,
                core=LOAD_CORE, work_dir=run_dir, name="warm-up")
        creates = [wrk.Req("POST", "/v1/videos",
                           {**target.auth, "Content-Type": "application/json"},
                           json.dumps(client.CREATE_BODY))]
        out = {}
        for op, op_reqs in (("status", reqs), ("create", creates)):
            cpu_start = target.proc.cpu()
            result = wrk.run(ctx.tool("wrk"), target.base, op_reqs, connections=connections,
                             seconds=seconds, core=LOAD_CORE, work_dir=run_dir,
                             name=f"{op}-{workers}")
            cpu = target.proc.cpu() - cpu_start
            out[op] = {**result.as_dict(), "server_cpu_seconds": round(cpu, 2),
                       "server_cpu_ms_per_request": round(
                           1000 * cpu / max(result.requests, 1), 4)}
    finally:
        target.stop()
    return out


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def run(ctx: Context, seconds: float, connections: int = 32) -> dict:
    load_before = [round(x, 2) for x in os.getloadavg()]
    one = _measure(ctx, 1, seconds, connections)
    two = _measure(ctx, 2, seconds, connections)
    return {
        "database": "sqlite", "connections": connections, "seconds": seconds,
        "cores": f"{os.cpu_count()} cores; servers unpinned, wrk pinned to core {LOAD_CORE}",
        "one_process": one, "two_processes": two,
        "ratio_status_rps": _ratio(two["status"]["rps"], one["status"]["rps"]),
        "ratio_create_rps": _ratio(two["create"]["rps"], one["create"]["rps"]),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="1 and 2 API processes")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("bench/out-processes"))
    args = parser.parse_args()
    found = tools.ensure(["taskset", "wrk"], install=False)
    context = Context(Sizes.full(), args.out.resolve(), found, quick=False)
    print(json.dumps(run(context, args.seconds, args.connections), indent=2))
