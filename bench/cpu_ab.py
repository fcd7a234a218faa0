"""Server CPU per request of two vidgate trees, side by side: a before/after for refactors.

    .venv/bin/python -m bench.cpu_ab /path/to/old/tree /path/to/new/tree [--rounds 3]

Throughput (`bench/run --phases api`) is the figure users care about, but it moves with
whatever else the machine runs: at a load average of 15 on two cores, runs of the same code
spread by +-50%. The CPU time the server process spends per request moves far less, so this
compares that: each tree's venv starts `vidgate serve` (SQLite, `VIDGATE_ROLE=api`, no
engine) pinned to one core, wrk drives JSON creates and then status reads, and the server's
user+system time from /proc is divided by the requests wrk completed. The trees alternate
for `--rounds` rounds; the table prints each figure and the new/old ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from . import procs, wrk

OPS = ("create", "status")


def _key(tree: Path, env: dict[str, str]) -> str:
    done = subprocess.run([str(tree / ".venv/bin/vidgate"), "keys", "create", "--name", "ab"],
                          env=env, capture_output=True, text=True, check=True, timeout=120)
    return done.stdout.strip().splitlines()[-1]


def measure(tree: Path, seconds: float, connections: int, work: Path) -> dict[str, float]:
    """Microseconds of server CPU per request for each op, on a fresh data folder."""
    data = work / "data"
    shutil.rmtree(data, ignore_errors=True)
    port = procs.free_port()
    env = {**os.environ, "VIDGATE_DATA_DIR": str(data), "VIDGATE_ROLE": "api",
           "VIDGATE_ACCESS_LOG": "0"}
    env.pop("VIDGATE_DATABASE_URL", None)
    env.pop("VIDGATE_CONFIG", None)
    subprocess.run([str(tree / ".venv/bin/vidgate"), "migrate"], env=env, check=True,
                   capture_output=True, timeout=120)
    key = _key(tree, env)
    server = procs.start("server", [str(tree / ".venv/bin/vidgate"), "serve", "--port",
                                    str(port)], core=0, log_dir=work, env=env)
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        procs.wait_http(server, f"{base}/healthz")
        body = json.dumps({"model": "sora-2", "prompt": "a cat", "size": "1280x720",
                           "seconds": "4"})
        create = [wrk.Req("POST", "/v1/videos", auth, body)]
        created = subprocess.run(["curl", "-s", "-X", "POST", f"{base}/v1/videos", "-H",
                                  f"Authorization: Bearer {key}", "-H",
                                  "Content-Type: application/json", "-d", body],
                                 capture_output=True, text=True, check=True, timeout=60)
        video_id = json.loads(created.stdout)["id"]
        status = [wrk.Req("GET", f"/v1/videos/{video_id}", auth)]
        found = {}
        for op, reqs in (("create", create), ("status", status)):
            before = server.cpu()
            result = wrk.run(shutil.which("wrk") or "wrk", base, reqs,
                             connections=connections, seconds=seconds, core=1,
                             work_dir=work, name=op)
            if result.errors:
                raise RuntimeError(f"{op}: {result.errors} errors; {server.tail()}")
            found[op] = (server.cpu() - before) / result.requests * 1e6
        return found
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    runs: dict[str, dict[str, list[float]]] = {"old": {o: [] for o in OPS},
                                               "new": {o: [] for o in OPS}}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for side in ("old", "new"):
                tree = getattr(args, side).resolve()
                got = measure(tree, args.seconds, args.connections, Path(tmp) / side)
                for op in OPS:
                    runs[side][op].append(got[op])
                print(f"round {round_ + 1} {side}: " + ", ".join(
                    f"{op} {got[op]:.0f} us" for op in OPS), flush=True)
    print(f"load average at the end: {os.getloadavg()}")
    print("| op | old us/request (runs) | new us/request (runs) | new / old (medians) |")
    print("|---|---|---|---:|")
    for op in OPS:
        old, new = runs["old"][op], runs["new"][op]
        ratio = statistics.median(new) / statistics.median(old)
        print(f"| {op} | {', '.join(f'{v:.0f}' for v in old)} | "
              f"{', '.join(f'{v:.0f}' for v in new)} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
