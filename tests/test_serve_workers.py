"""`vidgate serve --workers 2` (serving.serve_many): two processes on one port both answer
creates and status reads, one of them runs the engine, and SIGTERM to the supervisor stops
them all cleanly. Which process answered is read from `/metrics`, which is per process: only
the engine's process publishes the channel gauges (samples of `vidgate_channel_breaker_state`)."""

from __future__ import annotations

import os
import re
import signal

import httpx

from support import fresh_database_url, server_env, start_server, wait_for

CREATES = 30


def _fresh(url: str, method: str, path: str, **kwargs) -> httpx.Response:
    """One request on a new connection, so the kernel picks a process for each."""
    with httpx.Client(timeout=30) as http:
        return http.request(method, url + path, **kwargs)


def _counter(metrics: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _metrics_of_both(url: str) -> dict[bool, str]:
    """runs the engine -> that process's /metrics, once both processes answered."""
    seen: dict[bool, str] = {}

    def both_seen() -> bool:
        text = _fresh(url, "GET", "/metrics").text
        seen["\nvidgate_channel_breaker_state{" in text] = text
        return len(seen) == 2

    wait_for(both_seen, timeout=120, what="/metrics from both processes")
    return seen


def test_two_processes_share_the_port_and_stop_on_sigterm(tmp_path):
    url, cleanup = fresh_database_url(tmp_path)
    server = start_server(server_env(tmp_path / "data", url, VIDGATE_METRICS_PUBLIC="1"),
                          args=("--workers", "2"))
    try:
        _metrics_of_both(server.url)  # both are listening: creates can go to either
        ids = []
        for i in range(CREATES):
            created = _fresh(server.api, "POST", "/videos", headers=server.headers(),
                             json={"prompt": f"two processes {i}", "size": "720x720"})
            assert created.status_code == 200, created.text
            ids.append(created.json()["id"])
        for task_id in ids:
            read = _fresh(server.api, "GET", f"/videos/{task_id}", headers=server.headers())
            assert read.status_code == 200 and read.json()["id"] == task_id

        seen = _metrics_of_both(server.url)
        created = {engine: _counter(text, "vidgate_tasks_created_total")
                   for engine, text in seen.items()}
        reads = {engine: _counter(text, "vidgate_http_requests_total",
                                  route="/v1/videos/{video_id}", method="GET")
                 for engine, text in seen.items()}
        assert sum(created.values()) == CREATES and min(created.values()) > 0, created
        assert min(reads.values()) > 0, reads

        # the engine (in one process) follows the tasks created through both
        def all_completed() -> bool:
            return all(_fresh(server.api, "GET", f"/videos/{i}", headers=server.headers())
                       .json()["status"] == "completed" for i in ids[:4])

        wait_for(all_completed, timeout=180, what="the engine to finish tasks")
    finally:
        if server.proc.poll() is None:
            os.kill(server.proc.pid, signal.SIGTERM)  # the supervisor alone
        try:
            assert server.proc.wait(60) == 0
        finally:
            server.kill()
            cleanup()
    log = server.log()
    assert "Traceback" not in log, log
    # every server process stopped (uvicorn logs one line per process), then the supervisor
    assert len(re.findall(r"Finished server process", log)) == 2, log
    assert "stopped" in log.splitlines()[-1], log
