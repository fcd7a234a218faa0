"""API phase: create and status-read throughput and latency at each concurrency, with the
fake upstream's hit count per measurement (status reads must not reach the upstream)."""

from __future__ import annotations

import json
from collections.abc import Callable

from .. import client, wrk
from ..context import LOAD_CORE, Context
from ..nginx import Nginx
from ..procs import RssSampler
from ..targets import SEED_SIZE, Target

CREATE_JSON = json.dumps(client.CREATE_BODY)
OPS = ("status", "create")


def _status_reqs(target: Target, ids: list[str]) -> list[wrk.Req]:
    return [wrk.Req("GET", f"/v1/videos/{i}", target.auth) for i in ids]


def _create_reqs(target: Target) -> list[wrk.Req]:
    headers = {**target.auth, "Content-Type": "application/json"}
    return [wrk.Req("POST", "/v1/videos", headers, CREATE_JSON)]


def seed_ids(ctx: Context, target: Target) -> list[str]:
    """Tasks for status reads, made at SEED_SIZE so vidgate routes them to the channel whose
    upstream completes them. vidgate's are waited on until completed, so its engine is idle
    and any upstream hit during the reads would have to come from the reads; LiteLLM keeps
    no state, so its ids are whatever it returned."""
    ids = [client.create(target.base, target.auth, size=SEED_SIZE)["id"]
           for _ in range(ctx.sizes.seed_tasks)]
    if target.name == "vidgate":
        client.wait_completed(target.base, target.auth, ids)
    return ids


def run(ctx: Context, target: Target, upstream: Nginx, ops: tuple[str, ...] = OPS,
        before_create: Callable[[], dict] | None = None, ids: list[str] | None = None
        ) -> dict:
    """Measure `ops` (status reads, then creates) at each concurrency; `before_create`
    (vidgate: how many tasks its engine is following) runs before each create measurement
    and its answer goes in the notes. `ids` are the tasks status reads cycle through (made
    here when not given)."""
    if "status" in ops and ids is None:
        ids = seed_ids(ctx, target)
    out: dict = {"ops": {}, "upstream_hits": {}, "notes": {}, "cpu_us_per_request": {}}
    work = ctx.work / "wrk" / target.name
    with RssSampler(target.proc.pid) as rss:
        for op in ops:
            for conns in ctx.sizes.concurrency:
                name = f"{op}_c{conns}"
                if op == "create":
                    if before_create:
                        out["notes"][f"before_{name}"] = before_create()
                    reqs = _create_reqs(target)
                else:
                    reqs = _status_reqs(target, ids or [])
                hits = upstream.hits()
                cpu = target.proc.cpu()
                result = wrk.run(ctx.tool("wrk"), target.base, reqs, connections=conns,
                                 seconds=ctx.sizes.seconds, core=LOAD_CORE, work_dir=work,
                                 name=name)
                out["ops"][name] = result.as_dict()
                out["upstream_hits"][name] = upstream.hits() - hits
                # the server's own CPU time per answer: steadier than req/s on a busy machine
                out["cpu_us_per_request"][name] = round(
                    (target.proc.cpu() - cpu) / max(result.requests, 1) * 1e6)
    out["rss_under_load"] = rss.summary()
    return out


def merge(first: dict, second: dict) -> dict:
    """One result from two partial runs (status reads, creates) of the same server."""
    merged = {key: {**first.get(key, {}), **second.get(key, {})}
              for key in ("ops", "upstream_hits", "notes", "cpu_us_per_request")}
    rss_a, rss_b = first["rss_under_load"], second["rss_under_load"]
    merged["rss_under_load"] = {
        "start_mib": rss_a["start_mib"], "end_mib": rss_b["end_mib"],
        "max_mib": max(rss_a["max_mib"], rss_b["max_mib"]),
        "samples": rss_a["samples"] + rss_b["samples"],
    }
    return merged
