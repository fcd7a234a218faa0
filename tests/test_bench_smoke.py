"""The benchmark harness (bench/) runs end to end in --quick mode and writes well-formed
results. No timing is asserted: numbers from a loaded 2-core CI machine mean nothing; the
real run is `bench/run`, recorded in bench/RESULTS.md.

LiteLLM is left out here: installing it takes minutes and hundreds of MB, and starting it
takes ~10 s, which would triple this test for no extra coverage of the harness (the same
phase code measures both servers). Outside CI, phases whose tools (nginx, wrk) are missing
are skipped and reported as skipped; in CI (CI=true) the harness installs them with apt-get
or fails loudly.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import fresh_database_url, in_ci, needs_postgresql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import report, wrk  # noqa: E402
from bench.targets_check import evaluate  # noqa: E402

IN_CI = in_ci()
OP_KEYS = {"requests", "duration_s", "rps", "mib_per_s", "p50_ms", "p90_ms", "p99_ms",
           "max_ms", "errors", "status_errors"}


def _well_formed(op: dict) -> None:
    assert OP_KEYS <= op.keys()
    assert op["requests"] > 0 and op["rps"] > 0
    assert 0 < op["p50_ms"] <= op["p99_ms"] <= op["max_ms"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory) -> tuple[dict, Path]:
    if shutil.which("taskset") is None and not IN_CI:
        pytest.skip("taskset (util-linux) is not installed")
    out = tmp_path_factory.mktemp("bench")
    argv = [sys.executable, "-m", "bench", "--quick", "--no-chart", "--out", str(out)]
    if not IN_CI:
        argv.append("--no-install")  # a developer's test run installs nothing
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"bench --quick failed:\n{done.stderr[-6000:]}"
    return json.loads((out / "results.json").read_text()), out


def test_quick_run_measures_every_phase_it_can(quick_run):
    results, out = quick_run
    skipped = results["skipped"]
    assert not results["errors"]
    assert "litellm" in skipped  # left out by design in --quick
    if IN_CI:
        assert "api" not in skipped and "downloads" not in skipped

    if "api" not in skipped:
        vidgate = results["api"]["vidgate"]
        for name in ("status_c1", "status_c32", "create_c1", "create_c32"):
            _well_formed(vidgate["ops"][name])
            assert vidgate["ops"][name]["errors"] == 0
        # status reads are served from vidgate's own store: nginx saw nothing
        assert vidgate["upstream_hits"]["status_c1"] == 0
        assert vidgate["upstream_hits"]["status_c32"] == 0
        assert results["footprint"]["vidgate"]["ready_s"] > 0
        assert results["footprint"]["vidgate"]["idle_rss_mib"] > 10
    if "downloads" not in skipped:
        downloads = results["downloads"]
        for name in ("nginx_static", "vidgate_content", "vidgate_signed"):
            _well_formed(downloads[name])
            assert downloads[name]["mib_per_s"] > 0 and downloads[name]["errors"] == 0
        assert downloads["vidgate_rss"]["samples"] > 0

    if "processes" in results:  # needs wrk, as the api phase
        processes = results["processes"]
        for count in ("one_process", "two_processes"):
            for op in ("status", "create"):
                _well_formed(processes[count][op])
                assert processes[count][op]["errors"] == 0
                assert processes[count][op]["status_errors"] == 0
        assert processes["ratio_status_rps"] > 0

    engine = results["engine"]
    assert engine["created"] == engine["tasks"] and engine["not_completed"] == 0
    assert engine["peak_in_flight"] >= 1
    assert not math.isnan(engine["lag_p99_s"]) and engine["lag_p99_s"] >= engine["lag_p50_s"]
    assert engine["cpu_seconds_total"] > 0

    called = results["engine_callbacks"]
    assert called["created"] == called["tasks"] and called["not_completed"] == 0
    # every job was called back and every callback passed vidgate's and Replicate's checks
    assert called["callbacks_accepted"] == called["created"] and called["callbacks_refused"] == 0
    assert not math.isnan(called["lag_p99_s"])

    text = (out / "RESULTS.md").read_text()
    for heading in ("## Targets", "## API", "## Downloads", "## Engine scale",
                    "## Engine scale with provider callbacks", "## Footprint", "## Machine",
                    "## Commands"):
        assert heading in text
    assert {c["name"] for c in results["targets"]} == {c.name for c in evaluate(results)}


def test_wrk_summary_parses():
    line = (wrk.MARK + '{"requests":2000,"duration_us":2000000,"bytes":4194304,'
            '"connect_errors":0,"read_errors":0,"write_errors":0,"status_errors":3,'
            '"timeouts":1,"p50_us":900,"p90_us":1500,"p99_us":4000,"max_us":9000,'
            '"mean_us":1000.0}')
    result = wrk.parse("Running 2s test\n" + line + "\n")
    assert result.rps == 1000.0 and result.mib_per_s == 2.0
    assert (result.p50_ms, result.p99_ms) == (0.9, 4.0)
    assert result.errors == 4 and result.status_errors == 3


def test_wrk_script_cycles_through_requests():
    script = wrk.script([wrk.Req("GET", "/v1/videos/a", {"Authorization": "Bearer k"}),
                         wrk.Req("POST", "/v1/videos", {}, '{"prompt": "x"}')])
    assert '"/v1/videos/a"' in script and '"{\\"prompt\\": \\"x\\"}"' in script
    assert "done = function" in script


def test_targets_are_not_met_when_not_measured():
    checks = evaluate({"config": {"concurrency": [1, 32]}})
    assert checks and all(c.met is None for c in checks)
    text = report.render({"config": {"concurrency": [1, 32]}, "skipped": {"api": "no wrk"}})
    assert "not measured" in text and "no wrk" in text


def test_a_run_of_some_phases_keeps_the_others_and_says_from_when(tmp_path):
    from bench import runner

    previous = tmp_path / "results.json"
    ops = {"status_c32": {"rps": 600.0, "p50_ms": 1.0, "p99_ms": 2.0, "errors": 0}}
    previous.write_text(json.dumps({
        "finished_at": "earlier", "command": "bench/run", "engine": {},
        "api": {"vidgate": {"ops": ops}},
        "postgres": {"builds": {"this tree": {"postgresql": {"ops": ops},
                                              "sqlite": {"ops": {"status_c32": {
                                                  **ops["status_c32"], "rps": 1000.0}}},
                                              "ratios": {"status_c32": 0.6}}}}}))
    results = {"config": {"concurrency": [1, 32]}, "engine": {}, "api": {}}
    runner.carry_over(results, {"api", "downloads"}, previous)
    assert results["api"] == {}  # measured in this run (here: nothing), never replaced
    assert set(results["carried_over"]) == {"postgres"}  # an empty section is not kept
    text = report.render(results)
    assert "Kept from the run of earlier (`bench/run`)" in text
    assert "**60%**" in text  # PostgreSQL's share of SQLite, from the kept section
    check = next(c for c in evaluate(results) if c.name.startswith("status throughput on"))
    assert check.met is True and check.value.startswith("60%")


def test_engine_at_scale_on_postgresql_in_quick_mode(tmp_path):
    """The engine-postgres phase (issue 14) at --quick size: two `vidgate worker`s on a
    PostgreSQL database, after SQLite's engine on the same schedule, which its CPU per task
    is checked against."""
    needs_postgresql("the engine-postgres phase")
    url, cleanup = fresh_database_url(tmp_path)  # the phase drops and creates it again
    out = tmp_path / "bench"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench", "--quick", "--no-chart", "--no-install",
             "--phases", "engine-postgres", "--postgres-url", url, "--out", str(out)],
            cwd=ROOT, capture_output=True, text=True, timeout=240)
    finally:
        cleanup()
    assert done.returncode == 0, f"bench failed:\n{done.stderr[-6000:]}"
    results = json.loads((out / "results.json").read_text())
    scaled = results["engine_postgres"]
    assert (scaled["database"], scaled["engine_processes"]) == ("postgresql", 2)
    assert scaled["created"] == scaled["tasks"] and scaled["not_completed"] == 0
    assert scaled["duplicated_submits"] == 0 and scaled["cpu_seconds_per_1000_followed"] > 0
    checks = {c["name"]: c for c in results["targets"]}
    assert checks["tasks lost / submitted twice on PostgreSQL, 2 workers"]["met"] is True
    same = results["engine_sqlite_scale"]
    assert same["database"] == "sqlite" and same["tasks"] == 20 and same["not_completed"] == 0
    assert same["upstream_delay_s"] == scaled["upstream_delay_s"]
    assert same["poll_interval_s"] == scaled["poll_interval_s"]
    cpu = next(c for n, c in checks.items() if n.startswith("engine CPU per 1,000"))
    assert cpu["met"] is not None and "x;" in cpu["value"]  # both sides measured, a ratio
    text = (out / "RESULTS.md").read_text()
    assert "## Engine at scale on PostgreSQL" in text and "### SQLite on the same schedule" in text


def test_a_process_started_unpinned_may_use_every_core(tmp_path):
    """bench/run pins the harness to the load core; a process it starts with `core=None`
    (the engine phase's workers) must not inherit that pin. The first 100,000 run through
    bench/run had both workers on the load core with the fake upstream and the harness."""
    from bench import procs

    cores = os.sched_getaffinity(0)
    if len(cores) < 2:
        pytest.skip("one core: there is no other core to be kept off")
    os.sched_setaffinity(0, {min(cores)})  # as pin_to_load_core does
    try:
        proc = procs.start("affinity", [sys.executable, "-c",
                                        "import os; print(sorted(os.sched_getaffinity(0)))"],
                           core=None, log_dir=tmp_path)
        proc.popen.wait(timeout=60)
    finally:
        os.sched_setaffinity(0, cores)
    assert proc.log.read_text().strip() == str(sorted(cores))
