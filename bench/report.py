"""RESULTS.md from one run's results.json: tables, targets, machine, commands.

A hand-written block between NOTES_START and NOTES_END in an existing RESULTS.md (profiles,
explanations) is carried over when the file is regenerated."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .targets_check import evaluate

API_MODE = (
    "vidgate runs as users run it: `vidgate serve` (API and engine in one process, on one "
    "core) with `openai` channels whose base URL is nginx. Its create validates, stores the "
    "task and answers; the engine then submits it to nginx and polls it in the same process "
    "while the measurement goes on (nginx keeps created jobs in progress, as a real upstream "
    "does for minutes; polls start at 2 s and back off to 20 s, the channel defaults). The "
    "row \"API only\" is a second vidgate with `VIDGATE_ROLE=api` (no engine): the API path "
    "alone, how vidgate is deployed to scale creates (engines run as `vidgate worker` "
    "elsewhere), and the row the create target is checked on. LiteLLM's create forwards to "
    "nginx before it answers. Status reads: vidgate "
    "answers from its own database, LiteLLM forwards every read to nginx; the upstream-hits "
    "column counts nginx's access log during each measurement (for vidgate's creates: the "
    "engine's submits and polls). vidgate's status reads cycle through 64 completed tasks "
    "(made at 720x720, which routes them to a channel whose upstream completes them). Order "
    "for vidgate: status reads, downloads, creates, so the jobs the creates leave in "
    "progress do not weigh on the other measurements."
)
NOTES_START = "<!-- notes:start -->"
NOTES_END = "<!-- notes:end -->"


def _num(value: Any, fmt: str = "{:.0f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return fmt.format(value)


def _api_table(results: dict) -> list[str]:
    api = results.get("api") or {}
    if not api:
        return ["_API phase not run: " + results.get("skipped", {}).get("api", "skipped") + "_"]
    lines = ["| server | operation | clients | req/s | p50 ms | p99 ms | errors "
             "| upstream hits | vidgate / LiteLLM |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    labels = {"vidgate": "vidgate", "vidgate_api_only": "vidgate, API only (no engine)",
              "litellm": "LiteLLM"}
    for name, label in labels.items():
        ops = (api.get(name) or {}).get("ops") or {}
        hits = (api.get(name) or {}).get("upstream_hits") or {}
        for key, row in ops.items():
            op, conns = key.split("_c")
            ratio = ""
            if name != "litellm":
                other = ((api.get("litellm") or {}).get("ops") or {}).get(key)
                if other and other["rps"]:
                    ratio = f"**{row['rps'] / other['rps']:.1f}x**"
            lines.append(f"| {label} | {op} | {conns} | {_num(row['rps'])} "
                         f"| {_num(row['p50_ms'], '{:.2f}')} | {_num(row['p99_ms'], '{:.2f}')} "
                         f"| {row['errors']} | {hits.get(key, 'n/a')} | {ratio} |")
    return lines


def _download_table(results: dict) -> list[str]:
    dl = results.get("downloads") or {}
    if not dl:
        return ["_Download phase not run: "
                + results.get("skipped", {}).get("downloads", "skipped") + "_"]
    base = (dl.get("nginx_static") or {}).get("mib_per_s")
    lines = [f"{dl.get('bytes', 0) / 2**20:.0f} MiB file, {dl.get('connections')} connections. "
             "nginx is pinned to the server core like vidgate. At these speeds the single wrk "
             "thread on the load core is near its own limit, so a share above 100% means both "
             "servers saturate the load generator, not that vidgate outruns nginx.",
             "", "| route | MiB/s | % of nginx | downloads | p50 s per download | errors |",
             "|---|---:|---:|---:|---:|---:|"]
    for key, label in (("nginx_static", "nginx, file from disk (the limit)"),
                       ("vidgate_content", "vidgate `GET /v1/videos/{id}/content`"),
                       ("vidgate_signed", "vidgate signed `GET /files/...`"),
                       ("litellm_content", "LiteLLM `GET /v1/videos/{id}/content`")):
        row = dl.get(key)
        if not row:
            continue
        share = f"{row['mib_per_s'] / base:.0%}" if base else "n/a"
        lines.append(f"| {label} | {_num(row['mib_per_s'])} | {share} | {row['requests']} "
                     f"| {_num(row['p50_ms'] / 1000, '{:.2f}')} | {row['errors']} |")
    for key, label in (("vidgate_rss", "vidgate"), ("litellm_rss", "LiteLLM")):
        rss = dl.get(key)
        if rss:
            lines.append("")
            lines.append(f"{label} RSS during its downloads: start {rss['start_mib']:.0f} MiB, "
                         f"max {rss['max_mib']:.0f} MiB, end {rss['end_mib']:.0f} MiB "
                         f"({rss['samples']} samples).")
    return lines


def _engine_table(results: dict, section: str = "engine", phase: str = "engine"
                  ) -> list[str]:
    eng = results.get(section)
    if not eng:
        return [f"_Phase {phase} not run: "
                + results.get("skipped", {}).get(phase, "skipped") + "_"]
    workers = eng.get("database") == "postgresql"  # the engine-postgres phase's layout
    rows = [
        ("tasks created (failures)", f"{eng['created']} ({eng['create_failures']})"),
        *([("engine processes", f"{eng['engine_processes']} `vidgate worker`s (the API in "
                                "`vidgate serve`, VIDGATE_ROLE=api)")] if workers else []),
        ("peak in flight (accepted upstream, not yet reported)", eng["peak_in_flight"]),
        ("upstream delay per job", "U({}, {}) s".format(*eng["upstream_delay_s"])),
        ("channel poll interval", f"{eng.get('poll_interval_min_s', 0):g} s backing off to "
                                  f"{eng['poll_interval_s']:g} s"),
        ("create rate (API, 1 core)" if not workers else "create rate",
         f"{eng['create_rps']:.0f} /s ({eng['create_seconds']:.1f} s)"),
        ("completion lag p50 / p99 / max", f"{eng['lag_p50_s']:.2f} / {eng['lag_p99_s']:.2f}"
                                           f" / {eng['lag_max_s']:.2f} s"),
        ("never completed", eng["not_completed"]),
        *([("submitted upstream twice", eng["duplicated_submits"])] if workers else []),
        ("upstream polls per task", eng["polls_per_task"]),
        ("vidgate CPU: creating / following" if not workers
         else "workers' CPU (all): creating / following",
         f"{eng['cpu_seconds_creating']:.1f} s / {eng['cpu_seconds_following']:.1f} s"),
        ("engine CPU per 1,000 tasks followed", f"{eng['cpu_seconds_per_1000_followed']:.2f} s"),
        ("vidgate CPU share while following", f"{eng['cpu_share_following']:.0%} of one core"),
        ("wall time", f"{eng['wall_seconds']:.0f} s"),
    ]
    where = eng.get("cpu_following_by_process")
    if where:
        rows.append(("CPU while following, by process",
                     f"engines {where['engines']:.0f} s, "
                     + (f"API {where['api']:.0f} s, " if workers else "(the API is the engine), ")
                     + f"fake upstream "
                     f"{where['fake_upstream']:.0f} s, PostgreSQL {where['postgresql']:.0f} s, "
                     f"harness {where['harness']:.0f} s; the machine busy "
                     f"{where['machine_busy']:.0f} s of {where['machine_capacity']:.0f} s "
                     f"({where['machine_busy'] / max(where['machine_capacity'], 1e-9):.0%})"))
    if workers:
        rows += [("the API process's CPU, whole run",
                  f"{eng.get('api_cpu_seconds_total', 0):.0f} s"),
                 ("database size at the end", f"{eng['database_mib']:.0f} MiB")]
        table = eng.get("tasks_table")
        if table:
            rows.append(("PostgreSQL autovacuum; the tasks table's updates (HOT), dead rows",
                         f"{table['autovacuum']}; {table.get('n_tup_upd', 0):,} "
                         f"({table.get('n_tup_hot_upd', 0):,}), {table.get('n_dead_tup', 0):,}"))
    else:
        rows.append(("vidgate RSS at the end", f"{eng['rss_end_mib']:.0f} MiB"))
    return ["| measure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]


SCALE_MODE = (
    "The engine phase at scale, the layout of a scaled-out deployment: `vidgate serve` with "
    "`VIDGATE_ROLE=api` takes the creates and `vidgate worker` processes follow the tasks, "
    "all on a PostgreSQL database of the run's own (recreated). The upstream finishes each "
    "job late enough that every task is still in flight when the last is created, and polls "
    "back off to a longer interval than the engine phase's (at its 20 s, 100,000 jobs would "
    "be 5,000 polls a second). The workers, the API, the fake upstream, PostgreSQL and the "
    "harness share the machine's cores (no pinning).")


SAME_SCHEDULE = (
    "What the phase's CPU per task is checked against, run first in the same phase: "
    "SQLite's engine in one `vidgate serve` (pinned to one core, as in the engine phase) "
    "following 10,000 tasks on the same schedule, the same upstream delays and poll backoff, "
    "so that a task costs the same polls on both. (The engine phase's own tasks, at "
    "20 s polls and 2-4 minute jobs, cost fewer polls each than any job that lasts until "
    "100,000 are created.)")


CALLBACKS_MODE = (
    "The same measure with provider callbacks: one `replicate` channel on a fake Replicate "
    "API (`bench/fake_upstream.py --protocol replicate`), vidgate with `VIDGATE_PUBLIC_URL` "
    "set, so each submit carries its signed per-task `webhook` URL. The fake posts the "
    "prediction to it, signed as Replicate signs (Standard Webhooks), the moment the job "
    "completes; vidgate checks both signatures and makes the task due, and its engine then "
    "polls once, downloads and finishes it. Polling goes on only as the fallback, every "
    "`callback_poll_seconds`. Unlike the polling phase's fake, Replicate gives no previews, "
    "so vidgate makes each task's thumbnail and spritesheet itself (decoding the video) on "
    "the same core.")


def _engine_callbacks_table(results: dict) -> list[str]:
    eng = results.get("engine_callbacks")
    if not eng:
        return ["_Not run: " + results.get("skipped", {}).get("engine-callbacks", "skipped")
                + "_"]
    polled = results.get("engine") or {}
    rows = [
        ("tasks created (failures)", f"{eng['created']} ({eng['create_failures']})"),
        ("peak in flight (accepted upstream, not yet reported)", eng["peak_in_flight"]),
        ("upstream delay per job", "U({}, {}) s".format(*eng["upstream_delay_s"])),
        ("fallback poll interval", f"{eng['callback_poll_s']:g} s"),
        ("callbacks answered 200 / not (refused or timed out)",
         f"{eng['callbacks_accepted']} / "
                                         f"{eng['callbacks_refused']}"),
        ("create rate (API, 1 core)", f"{eng['create_rps']:.0f} /s "
                                      f"({eng['create_seconds']:.1f} s)"),
        ("completion lag p50 / p99 / max", f"{eng['lag_p50_s']:.2f} / {eng['lag_p99_s']:.2f}"
                                           f" / {eng['lag_max_s']:.2f} s"),
        ("never completed", eng["not_completed"]),
        ("upstream polls per task", eng["polls_per_task"]),
        ("vidgate CPU: creating / following", f"{eng['cpu_seconds_creating']:.1f} s / "
                                              f"{eng['cpu_seconds_following']:.1f} s"),
        ("vidgate CPU share while following", f"{eng['cpu_share_following']:.0%} of one core"),
        ("wall time", f"{eng['wall_seconds']:.0f} s"),
    ]
    if polled.get("lag_p99_s") is not None:
        same = "" if eng.get("separate_run") else ", same run"
        rows.append((f"polling (section above{same}): lag p99, polls per task",
                     f"{polled['lag_p99_s']:.2f} s, {polled['polls_per_task']}"))
    lines = [CALLBACKS_MODE, ""]
    separate = eng.get("separate_run")
    if separate:  # merged from a run of this phase alone (see bench/README.md)
        lines += [f"Measured {separate['finished_at']} in a separate run, "
                  f"`{separate['command']}`; load average (1, 5, 15 min) at its start "
                  f"{separate['load_average_start']}, at its end "
                  f"{separate['load_average_end']}. {separate.get('note', '')}".rstrip(), ""]
    return lines + ["| measure | value |", "|---|---|"] + [
        f"| {k} | {v} |" for k, v in rows]


POSTGRES_MODE = (
    "Status reads and creates on PostgreSQL next to SQLite, measured in the same run on the "
    "same core: for each database one `vidgate serve` (its engine completes the tasks the "
    "status reads cycle through) takes the status reads, and one `VIDGATE_ROLE=api` process "
    "on a fresh database takes the creates (the create endpoint's own throughput). vidgate "
    "is pinned to core 0 as in the API phase; PostgreSQL is the machine's server (a system "
    "service, not pinned: it runs on either core, beside wrk on core 1). A `baseline` build "
    "(`--baseline`) is measured the same way in the same run: before beside after.")


def _postgres_table(results: dict) -> list[str]:
    pg = results.get("postgres")
    if not pg:
        return ["_Not run: " + results.get("skipped", {}).get(
            "postgres", "run it with `bench/run --phases postgres`") + "_"]
    lines = [POSTGRES_MODE, ""]
    if pg.get("baseline"):
        lines += [f"Baseline: `{pg['baseline']}`.", ""]
    lines += ["| build | operation | clients | SQLite req/s | PostgreSQL req/s | PostgreSQL "
              "/ SQLite | vidgate CPU us/request, SQLite / PostgreSQL | SQLite p50 / p99 ms "
              "| PostgreSQL p50 / p99 ms | errors |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for build, data in pg.get("builds", {}).items():
        lite, post = data.get("sqlite", {}), data.get("postgresql", {})
        for key, row in post.get("ops", {}).items():
            op, conns = key.split("_c")
            other = lite.get("ops", {}).get(key) or {}
            ratio = (data.get("ratios") or {}).get(key)
            cpu = [d.get("cpu_us_per_request", {}).get(key) for d in (lite, post)]
            lines.append(
                f"| {build} | {op} | {conns} | {_num(other.get('rps'))} | {_num(row['rps'])} "
                f"| **{_num(ratio and ratio * 100)}%** | {_num(cpu[0])} / {_num(cpu[1])} "
                f"| {_num(other.get('p50_ms'), '{:.2f}')} / {_num(other.get('p99_ms'), '{:.2f}')}"
                f" | {_num(row['p50_ms'], '{:.2f}')} / {_num(row['p99_ms'], '{:.2f}')} "
                f"| {row['errors'] + other.get('errors', 0)} |")
    return lines


def _carried_over(results: dict) -> list[str]:
    kept = results.get("carried_over") or {}
    runs: dict[tuple, list[str]] = {}
    for section, origin in kept.items():
        runs.setdefault((origin.get("finished_at"), origin.get("command")), []).append(section)
    lines = [f"Kept from the run of {when} (`{command}`), not measured again in this one: "
             f"{', '.join(f'`{s}`' for s in sections)}." for (when, command),
             sections in runs.items()]
    return [*lines, ""] if lines else []


def _footprint_table(results: dict) -> list[str]:
    fp = results.get("footprint") or {}
    lines = ["| server | start to ready | idle RSS | max RSS under API load |",
             "|---|---:|---:|---:|"]
    for name in ("vidgate", "litellm"):
        row = fp.get(name)
        if row:
            lines.append(f"| {name} | {_num(row.get('ready_s'), '{:.2f} s')} "
                         f"| {_num(row.get('idle_rss_mib'), '{:.0f} MiB')} "
                         f"| {_num(row.get('load_rss_mib'), '{:.0f} MiB')} |")
    return lines


def _targets(results: dict) -> list[str]:
    lines = ["| target | goal | this run | met |", "|---|---|---|:-:|"]
    for check in evaluate(results):
        mark = {True: "yes", False: "**no**", None: "not measured"}[check.met]
        lines.append(f"| {check.name} | {check.goal} | {check.value} | {mark} |")
    return lines


def _machine(results: dict) -> list[str]:
    m = results.get("machine") or {}
    lines = [f"- {m.get('nproc')} cores ({m.get('cpu_model')}), {m.get('mem_gib')} GiB RAM, "
             f"{m.get('os')}, kernel {m.get('kernel')}",
             "- server under test pinned to core 0 (`taskset -c 0`); wrk, nginx, the fake "
             "upstream and the harness on core 1",
             f"- load average (1, 5, 15 min) at the start {results.get('load_average_start')}"
             f", at the end {results.get('load_average_end')} (other work on the machine "
             "shares both cores)"]
    for tool, version in (m.get("versions") or {}).items():
        lines.append(f"- {tool}: {version}")
    return lines


def render(results: dict, notes: str = "") -> str:
    mode = "quick (smoke) run" if results.get("quick") else "full run"
    parts = [
        "# vidgate benchmarks", "",
        f"Measured {results.get('finished_at', '')} in one {mode} of `{results.get('command')}`."
        " Every ratio compares two numbers from this same run.", "",
        *_carried_over(results),
        "![chart](chart.png)", "",
        "## Targets", "", *_targets(results), "",
        "## API: create and status reads", "",
        API_MODE, "", *_api_table(results), "",
        "## Downloads", "", *_download_table(results), "",
        "## Engine scale", "", *_engine_table(results), "",
        "## Engine scale with provider callbacks", "", *_engine_callbacks_table(results), "",
        "## Engine at scale on PostgreSQL", "", SCALE_MODE, "",
        *_engine_table(results, "engine_postgres", "engine-postgres"), "",
        "### SQLite on the same schedule", "", SAME_SCHEDULE, "",
        *_engine_table(results, "engine_sqlite_scale", "engine-postgres"), "",
        "## PostgreSQL next to SQLite", "", *_postgres_table(results), "",
        "## Footprint", "", *_footprint_table(results), "",
        "## Machine", "", *_machine(results), "",
        "## Commands", "", "```", *results.get("commands", []), "```", "",
    ]
    skipped = results.get("skipped") or {}
    errors = results.get("errors") or {}
    if skipped or errors:
        parts += ["## Not measured in this run", ""]
        parts += [f"- {k}: skipped ({v})" for k, v in skipped.items()]
        parts += [f"- {k}: failed ({v})" for k, v in errors.items()]
        parts.append("")
    parts += [NOTES_START, notes.strip("\n"), NOTES_END, ""]
    return "\n".join(parts)


def existing_notes(path: Path) -> str:
    if not path.is_file():
        return ""
    text = path.read_text()
    if NOTES_START in text and NOTES_END in text:
        return text.split(NOTES_START, 1)[1].split(NOTES_END, 1)[0]
    return ""


def write(results: dict, path: Path) -> None:
    path.write_text(render(results, existing_notes(path)))


def main() -> None:
    """Re-render a RESULTS.md from a results.json (keeping its notes): no measuring."""
    import json
    import sys

    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m bench.report results.json RESULTS.md")
    write(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))


if __name__ == "__main__":
    main()
