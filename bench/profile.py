"""Profile vidgate under one API load with py-spy, and summarise where the time goes.

    .venv/bin/python -m bench.profile --op status --connections 1 --seconds 10

Starts nginx and vidgate as the benchmark does, runs wrk, records vidgate with py-spy
(installed into bench/.venv on first use), then prints the top frames by self and by
inclusive samples. The collapsed stacks (flamegraph input) and an SVG stay in --out.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from vidgate.backends.sandbox.sample import padded_mp4, render_sample

from . import nginx, targets, tools, venvs, wrk
from .context import LOAD_CORE, SERVER_CORE, Sizes
from .phases import api
from .runner import BENCH, pin_to_load_core


def summarise(collapsed: Path, top: int = 25) -> str:
    """Top frames from py-spy's collapsed output ('frame;frame;... count' per line)."""
    self_counts: Counter[str] = Counter()
    incl_counts: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        self_counts[frames[-1]] += n
        packages[_package(frames[-1])] += n
        for frame in set(frames):
            incl_counts[frame] += n
    lines = [f"{total} samples", "", "self time by package (innermost frame):"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in packages.most_common(12)]
    lines += ["", "top self:"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in self_counts.most_common(top)]
    lines += ["", "top inclusive:"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in incl_counts.most_common(top)]
    return "\n".join(lines)


def _package(frame: str) -> str:
    """'Connection._execute (aiosqlite/core.py:158)' -> 'aiosqlite'."""
    match = re.search(r"\(([^/()]+)/", frame)
    return match.group(1) if match else (frame.split(" (")[0] or "(native)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--op", choices=("status", "create", "content"), default="status")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "profile")
    parser.add_argument("--wall", action="store_true",
                        help="sample every thread, idle or not (latency), not only GIL holders")
    parser.add_argument("--env", action="append", default=[],
                        help="extra VIDGATE_...=value for the server")
    args = parser.parse_args()
    pin_to_load_core()
    found = tools.ensure(["nginx", "wrk", "taskset"], install=True)
    spy = venvs.pyspy()
    out = args.out.resolve()
    sample = render_sample(out / "media", "bench upstream result")
    big = padded_mp4(sample.video, sample.folder / "big.mp4", Sizes.full().big_bytes)
    upstream = nginx.start(found["nginx"] or "nginx", out / "nginx", sample.folder, big.name,
                           LOAD_CORE)
    extra = dict(item.split("=", 1) for item in args.env)
    target = targets.start_vidgate(out / "vidgate", upstream.base, core=SERVER_CORE,
                                   extra_env=extra)
    try:
        if args.op == "status":
            ids = _seed(target, 16)
            reqs = [wrk.Req("GET", f"/v1/videos/{i}", target.auth) for i in ids]
        elif args.op == "create":
            reqs = api._create_reqs(target)
        else:
            from . import client

            task = client.create(target.base, target.auth, model="sora-2-pro")
            client.wait_completed(target.base, target.auth, [task["id"]], timeout=300)
            reqs = [wrk.Req("GET", f"/v1/videos/{task['id']}/content", target.auth)]
        name = f"{args.op}_c{args.connections}"
        collapsed = out / f"{name}.collapsed"
        extra_spy = ["--idle"] if args.wall else ["--gil"]
        spy_proc = subprocess.Popen([str(spy), "record", "--pid", str(target.proc.pid),
                                     "--duration", str(int(args.seconds) + 1), "--rate", "250",
                                     "--format", "raw", *extra_spy, "--output", str(collapsed),
                                     "--nonblocking"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        result = wrk.run(found["wrk"] or "wrk", target.base, reqs,
                         connections=args.connections, seconds=args.seconds, core=LOAD_CORE,
                         work_dir=out / "wrk", name=name, timeout_s=60)
        spy_proc.wait(timeout=60)
        print(f"{name}: {result.rps:.0f} req/s, p50 {result.p50_ms:.2f} ms, "
              f"p99 {result.p99_ms:.2f} ms, {result.mib_per_s:.0f} MiB/s")
        summary = summarise(collapsed)
        (out / f"{name}.txt").write_text(summary)
        print(summary)
    finally:
        target.stop()
        upstream.stop()


def _seed(target: targets.Target, count: int) -> list[str]:
    from . import client

    ids = [client.create(target.base, target.auth, size=targets.SEED_SIZE)["id"]
           for _ in range(count)]
    client.wait_completed(target.base, target.auth, ids)
    return ids


if __name__ == "__main__":
    sys.exit(main())
