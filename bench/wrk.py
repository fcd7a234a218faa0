"""Load with wrk: a generated Lua script cycles through given requests and prints its summary
as one JSON line, so nothing depends on parsing wrk's human-readable output."""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

MARK = "BENCH_JSON "

_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"max_us":%d,"mean_us":%.1f}\\n',
    "__MARK__", summary.requests, summary.duration, summary.bytes, e.connect, e.read,
    e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
"""


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None


@dataclass
class Result:
    requests: int
    duration_s: float
    rps: float
    mib_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    status_errors: int

    def as_dict(self) -> dict:
        return asdict(self)


def _lua_str(text: str) -> str:
    # JSON's escapes for ASCII text (\\, \", \n) are also Lua's.
    return json.dumps(text, ensure_ascii=True)


def script(reqs: list[Req]) -> str:
    """Lua that sends `reqs` round-robin, one formatted request per call."""
    rows = []
    for req in reqs:
        headers = "{" + ", ".join(f"[{_lua_str(k)}] = {_lua_str(v)}"
                                  for k, v in req.headers.items()) + "}"
        body = _lua_str(req.body) if req.body is not None else "nil"
        rows.append(f"  {{{_lua_str(req.method)}, {_lua_str(req.path)}, {headers}, {body}}},")
    return (
        "local specs = {\n" + "\n".join(rows) + "\n}\n"
        "local reqs = {}\nlocal i = 0\n"
        "init = function(args)\n"
        "  for k, s in ipairs(specs) do reqs[k] = wrk.format(s[1], s[2], s[3], s[4]) end\n"
        "end\n"
        "request = function()\n  i = i % #reqs + 1\n  return reqs[i]\nend\n"
        + _DONE.replace("__MARK__", MARK)
    )


def parse(output: str) -> Result:
    line = next((ln for ln in output.splitlines() if ln.startswith(MARK)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{output[-2000:]}")
    raw = json.loads(line[len(MARK):])
    duration = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors",
                                  "status_errors", "timeouts"))
    return Result(
        requests=raw["requests"], duration_s=round(duration, 3),
        rps=round(raw["requests"] / duration, 1) if duration else 0.0,
        mib_per_s=round(raw["bytes"] / duration / 2**20, 1) if duration else 0.0,
        p50_ms=raw["p50_us"] / 1000, p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000, max_ms=raw["max_us"] / 1000,
        errors=errors, status_errors=raw["status_errors"],
    )


def run(binary: str, base_url: str, reqs: list[Req], *, connections: int, seconds: float,
        core: int, work_dir: Path, name: str, timeout_s: int = 10) -> Result:
    """Drive `reqs` at `base_url` with `connections` keep-alive connections on one thread."""
    work_dir.mkdir(parents=True, exist_ok=True)
    lua = work_dir / f"{name}.lua"
    lua.write_text(script(reqs))
    argv = ["taskset", "-c", str(core), binary, "-t1", f"-c{connections}",
            f"-d{max(1, round(seconds))}s", f"--timeout={timeout_s}s", "-s", str(lua),
            base_url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    (work_dir / f"{name}.out").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}")
    return parse(done.stdout)
