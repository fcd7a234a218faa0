"""PostgreSQL phase: status reads and creates on PostgreSQL next to SQLite, same core, same run.

For each database, one `vidgate serve` (its engine completes the tasks the status reads
cycle through) measures status reads, then one `VIDGATE_ROLE=api` process on a fresh
database measures creates (the create endpoint's own throughput, as the API phase's create
target). With `--baseline VIDGATE`, another build (e.g. main's tree) is measured the same way
in the same run: the "before" beside the "after". The PostgreSQL database named in the URL is
dropped and created again before each server: use one of its own (`createdb NAME`)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from .. import targets, vidgate_pg
from ..context import SERVER_CORE, Context
from ..nginx import Nginx
from . import api

DATABASES = ("sqlite", "postgresql")


def _server(ctx: Context, upstream: Nginx, build: str, binary: Path | None, database: str,
            postgres_url: str, role: str) -> targets.Target:
    env = {"VIDGATE_ROLE": "api"} if role == "api" else {}
    if database == "postgresql":
        vidgate_pg.recreate(postgres_url)
        env["VIDGATE_DATABASE_URL"] = postgres_url
    return targets.start_vidgate(ctx.work / "postgres" / f"{build}-{database}-{role}",
                                 upstream.base, core=SERVER_CORE, extra_env=env,
                                 binary=binary)


def measure(ctx: Context, upstream: Nginx, build: str, binary: Path | None,
            postgres_url: str) -> dict:
    """{database: {"ops": {op_cN: wrk result}, "cpu_us_per_request": {op_cN: us}}} for one
    build."""
    out: dict = {}
    for database in DATABASES:
        found: dict = {"ops": {}, "cpu_us_per_request": {}}
        for role, op in (("serve", "status"), ("api", "create")):
            target = _server(ctx, upstream, build, binary, database, postgres_url, role)
            try:
                measured = api.run(ctx, target, upstream, (op,))
            finally:
                target.stop()
            for key in found:
                found[key].update(measured[key])
        out[database] = found
    return out


def ratios(build: dict) -> dict[str, float | None]:
    """PostgreSQL's req/s as a share of SQLite's, per measurement."""
    sqlite_ops = build.get("sqlite", {}).get("ops", {})
    found: dict[str, float | None] = {}
    for name, row in build.get("postgresql", {}).get("ops", {}).items():
        base = (sqlite_ops.get(name) or {}).get("rps")
        found[name] = row["rps"] / base if base else None
    return found


def run(ctx: Context, upstream: Nginx, postgres_url: str, baseline: Path | None = None
        ) -> dict:
    builds = {"this tree": None}
    if baseline is not None:
        builds["baseline"] = baseline
    results: dict = {"postgres_url": make_url(postgres_url).render_as_string(),
                     "baseline": str(baseline) if baseline else None, "builds": {}}
    for build, binary in builds.items():
        measured = measure(ctx, upstream, build.replace(" ", "-"), binary, postgres_url)
        results["builds"][build] = {**measured, "ratios": ratios(measured)}
    return results
