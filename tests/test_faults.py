"""Faults of the parts vidgate depends on, each end to end with a real `vidgate serve`:
PostgreSQL connections killed and PostgreSQL out of reach, Redis out of reach, the blob
folder full, an upstream answering a 10 GB body. Each asserts the answers while the part is
down (never a 500), and afterwards that no task was lost and none settled twice (one hold,
at most one refund per task, and the balance equal to what was paid in less what the tasks
cost).

Outages are made with a TCP proxy the test owns (tests/tcp_proxy.py) or a tmpfs it mounts:
the real PostgreSQL and Redis are shared with other tests and are never stopped; connections
are terminated only in this test's own database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.exc import StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from fakes.fixtures import fake_world_fixture, sample_media_fixture  # noqa: F401
from support import (
    _pg_admin,
    fresh_database_url,
    needs_postgresql,
    server_env,
    start_server,
    vidgate_cmd,
    wait_for,
)
from tcp_proxy import TcpProxy
from vidgate.store.database import Database, is_unreachable
from vidgate.store.schema import api_keys, ledger, tasks

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
START_USD = 100
TERMINAL = ("completed", "failed")


def limited_key(env: dict, **options: str) -> str:
    args = ["keys", "create", "--name", "faults", "--balance-usd", str(START_USD)]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", value]
    out = subprocess.run(vidgate_cmd(*args), env=env, capture_output=True, text=True,
                         check=True, timeout=60)
    return out.stdout.strip().splitlines()[-1]


def create(server, i: int) -> str:
    r = httpx.post(server.api + "/videos", headers=server.headers(), timeout=30,
                   json={"prompt": f"fault {i}", "size": "720x720", "seconds": "4"})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def statuses(server, ids: list[str]) -> dict[str, dict]:
    out = {}
    with httpx.Client(headers=server.headers(), timeout=30) as client:
        for task_id in ids:
            r = client.get(f"{server.api}/videos/{task_id}")
            assert r.status_code == 200, (r.status_code, r.text)
            out[task_id] = r.json()
    return out


def all_finished(server, ids: list[str]) -> dict[str, dict] | None:
    s = statuses(server, ids)
    return s if all(v["status"] in TERMINAL for v in s.values()) else None


def assert_money_and_tasks(database_url: str, ids: list[str]) -> None:
    """Every accepted task is in the database, ended; each has one hold and at most one
    refund; the balance is what was paid in less what the tasks cost."""
    async def read():
        db = Database(database_url)
        try:
            async with db.engine.connect() as conn:
                rows = (await conn.execute(sa.select(tasks.c.id, tasks.c.status,
                                                     tasks.c.cost_micro))).all()
                moves = (await conn.execute(sa.select(ledger.c.task_id, ledger.c.kind,
                                                      ledger.c.amount_micro))).all()
                balances = (await conn.execute(sa.select(api_keys.c.balance_micro)
                                               .where(api_keys.c.balance_micro.is_not(None)))
                            ).scalars().all()
            return rows, moves, balances
        finally:
            await db.close()

    rows, moves, balances = asyncio.run(read())
    assert sorted(r.id for r in rows) == sorted(ids), "a task was lost or appeared"
    assert all(r.status in TERMINAL for r in rows), rows
    kinds = Counter((m.task_id, m.kind) for m in moves if m.task_id)
    for task_id in ids:
        assert kinds[(task_id, "hold")] == 1, kinds
        assert kinds[(task_id, "refund")] <= 1, f"{task_id} refunded twice: {kinds}"
    assert balances == [START_USD * 1_000_000 - sum(r.cost_micro or 0 for r in rows)]


def test_postgresql_connections_killed_mid_run(tmp_path):
    """Every status read stays a 200 while the test's own database connections are killed
    over and over; the engine carries on; each task completes and is settled once."""
    needs_postgresql("a PostgreSQL fault")
    url, cleanup = fresh_database_url(tmp_path)
    dbname = url.rsplit("/", 1)[1]
    env = server_env(tmp_path / "data", url, VIDGATE_LEASE_SECONDS="3")
    server = None
    try:
        server = start_server(env, key=limited_key(env))
        ids = [create(server, i) for i in range(4)]
        kills = 0

        def kill_then_read():
            nonlocal kills
            _pg_admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      f"WHERE datname = '{dbname}' AND pid <> pg_backend_pid()")
            kills += 1
            return all_finished(server, ids)  # asserts every read is a 200

        done = wait_for(kill_then_read, timeout=240, interval=0.3,
                        what="every task to finish while connections are killed")
        assert kills >= 3
        assert all(v["status"] == "completed" for v in done.values()), done
        assert "unhandled error" not in server.log()  # no request ended in a 500
        server.stop()
        assert_money_and_tasks(url, ids)
    finally:
        if server is not None:
            server.stop()
        cleanup()


@pytest.mark.parametrize(("error", "unreachable"), [
    (ConnectionRefusedError(111, "Connection refused"), True),
    (StatementError("reconnect", "SELECT 1", {}, ConnectionRefusedError(111, "refused")), True),
    (StatementError("bad value", "SELECT 1", {}, ValueError("not an int")), False),
    (ValueError("not an int"), False),
    (PoolTimeout("QueuePool limit of size 1 overflow 0 reached"), True),
])
def test_what_counts_as_the_database_being_away(error, unreachable):
    """A pooled connection found dead whose reconnect is refused reaches the API as a bare
    StatementError around the driver's error: that is the database away (503), not a bug."""
    assert is_unreachable(error) is unreachable


def test_postgresql_unreachable_answers_503_then_resumes(tmp_path):
    """With PostgreSQL out of reach every family answers 503 + Retry-After in its error
    shape; when it is back the engine resumes by itself and nothing is lost or paid twice."""
    needs_postgresql("a PostgreSQL fault")
    url, cleanup = fresh_database_url(tmp_path)
    real = urlsplit(url)
    proxy = TcpProxy(real.port or 5432).start()
    proxied = url.replace(f"@{real.hostname}:{real.port}", f"@127.0.0.1:{proxy.port}")
    assert proxied != url
    env = server_env(tmp_path / "data", proxied, VIDGATE_LEASE_SECONDS="3",
                     VIDGATE_KEY_CACHE_SECONDS="0")
    server = None
    try:
        server = start_server(env, key=limited_key(env))
        ids = [create(server, i) for i in range(3)]
        wait_for(lambda: statuses(server, ids)[ids[0]]["status"] == "in_progress",
                 timeout=60, what="a task to be under way")
        proxy.stop()
        h = server.headers()
        answers = [
            httpx.get(f"{server.api}/videos/{ids[0]}", headers=h, timeout=30),
            httpx.get(f"{server.api}/videos", headers=h, timeout=30),
            httpx.get(f"{server.api}/video/generations/{ids[1]}", headers=h, timeout=30),
            httpx.post(server.api + "/videos", headers=h, timeout=30,
                       json={"prompt": "while down", "size": "720x720", "seconds": "4"}),
        ]
        for r in answers:
            assert r.status_code == 503, (r.request.url, r.status_code, r.text)
            assert r.headers["retry-after"].isdigit()
            error = r.json()["error"]
            assert error["code"] == "service_unavailable"
            assert error["type"] == "server_error"
            assert "Traceback" not in r.text
        assert answers[2].json()["code"] == "service_unavailable"  # family B's envelope
        proxy.start()
        done = wait_for(lambda: all_finished(server, ids), timeout=240, interval=0.5,
                        what="the engine to resume and finish every task")
        assert all(v["status"] == "completed" for v in done.values()), done
        ids.append(create(server, 99))  # and new work is taken again
        wait_for(lambda: all_finished(server, ids), timeout=120, what="a new task to finish")
        server.stop()
        assert_money_and_tasks(url, ids)
    finally:
        if server is not None:
            server.stop()
        proxy.stop()
        cleanup()


def _redis_port() -> int:
    url = os.environ.get("VIDGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    port = urlsplit(url).port or 6379
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError as exc:
        if IN_CI:
            pytest.fail(f"Redis on 127.0.0.1:{port} is not reachable: {exc!r}")
        pytest.skip(f"Redis on 127.0.0.1:{port} is not reachable")
    return port


@pytest.mark.parametrize("fail_closed", [False, True])
def test_redis_down_with_limits_configured(tmp_path, fail_closed):
    """Redis out of reach: a limited key is served uncounted with a warning (fail open), or
    refused with 503 + Retry-After (fail closed); never a 500. Limits work again after."""
    proxy = TcpProxy(_redis_port()).start()
    url, cleanup = fresh_database_url(tmp_path)
    env = server_env(tmp_path / "data", url,
                     VIDGATE_REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0",
                     VIDGATE_RATELIMIT_FAIL_CLOSED="1" if fail_closed else "0")
    server = None
    try:
        server = start_server(env, key=limited_key(env, rpm="3"))
        h = server.headers()
        codes = [httpx.get(server.api + "/videos", headers=h).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]  # limits are counted in Redis
        proxy.stop()
        fresh = limited_key(env, rpm="3")  # a key with budget left
        for _ in range(5):
            r = httpx.get(server.api + "/videos", headers={"Authorization": f"Bearer {fresh}"},
                          timeout=30)
            if fail_closed:
                assert r.status_code == 503, r.text
                assert r.headers["retry-after"].isdigit()
                assert r.json()["error"]["code"] == "service_unavailable"
            else:
                assert r.status_code == 200, r.text
        if not fail_closed:
            wait_for(lambda: "rate-limit store unreachable" in server.log(), timeout=10,
                     what="the fail-open warning in the log")
        proxy.start()
        r = httpx.get(server.api + "/videos", headers=h, timeout=30)
        assert r.status_code == 429, r.text  # the old budget is still spent in Redis
    finally:
        if server is not None:
            server.stop()
        proxy.stop()
        cleanup()


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 KiB tmpfs for the blob folder: too small for any video."""
    where = tmp_path / "blobs"
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        if IN_CI:
            pytest.fail("the full-disk test needs root (mount -t tmpfs) in CI")
        pytest.skip("mounting a tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@contextlib.contextmanager
def mirroring_into_full_folder(tmp_path, folder, **env_extra: str):
    """A server whose blob folder is `folder`, and one task whose result did not fit there:
    (server, database url, task id), once the server has logged the full disk."""
    url, cleanup = fresh_database_url(tmp_path)
    env = server_env(tmp_path / "data", url, VIDGATE_BLOB_URL=str(folder), **env_extra)
    server = None
    try:
        server = start_server(env, key=limited_key(env))
        task_id = create(server, 0)
        wait_for(lambda: "No space left on device" in server.log(), timeout=120,
                 what="the mirror to run out of space")
        yield server, url, task_id
    finally:
        if server is not None:
            server.stop()
        cleanup()


def test_blob_folder_full_while_mirroring(tmp_path, small_tmpfs):
    """The result does not fit: the task stays unfinished, nothing half-written is served or
    left behind; once there is space it completes, is served whole, and is paid once."""
    with mirroring_into_full_folder(tmp_path, small_tmpfs) as (server, url, task_id):
        video = statuses(server, [task_id])[task_id]
        assert video["status"] == "in_progress", video
        r = httpx.get(f"{server.api}/videos/{task_id}/content", headers=server.headers())
        assert r.status_code in (400, 404, 409), (r.status_code, r.text[:200])
        leftovers = [p for p in small_tmpfs.rglob("*") if p.is_file()]
        assert leftovers == [], leftovers  # no half-written .part taking the space
        subprocess.run(["mount", "-o", "remount,size=64m", str(small_tmpfs)], check=True)
        done = wait_for(lambda: all_finished(server, [task_id]), timeout=120,
                        what="the task to complete once there is space")
        video = done[task_id]
        assert video["status"] == "completed", video
        r = httpx.get(f"{server.api}/videos/{task_id}/content", headers=server.headers())
        assert r.status_code == 200
        assert len(r.content) == int(r.headers["content-length"]) > 1000
        assert r.content[4:8] == b"ftyp"
        server.stop()
        assert_money_and_tasks(url, [task_id])
        assert not list(Path(small_tmpfs).rglob("*.part"))


def test_blob_folder_full_past_the_deadline(tmp_path, small_tmpfs):
    """The result never fits: at its deadline the task fails with `internal_error` (the
    failure was ours, not the provider's: no `timeout`), its hold is released, and nothing
    half-written is left or served."""
    with mirroring_into_full_folder(tmp_path, small_tmpfs, VIDGATE_TASK_DEADLINE_SECONDS="40"
                                    ) as (server, url, task_id):
        done = wait_for(lambda: all_finished(server, [task_id]), timeout=120,
                        what="the task to end at its deadline")
        video = done[task_id]
        assert (video["status"], video["error"]["code"]) == ("failed", "internal_error"), video
        assert video["url"] is None
        r = httpx.get(f"{server.api}/videos/{task_id}/content", headers=server.headers())
        assert r.status_code in (400, 404, 409), (r.status_code, r.text[:200])
        assert [p for p in small_tmpfs.rglob("*") if p.is_file()] == []
        server.stop()
        assert_money_and_tasks(url, [task_id])  # held once, refunded once, costs nothing


def test_huge_upstream_bodies_are_bounded(tmp_path, fake_world, sample_media):
    """A 10 GB result, declared or chunked, is cut at the channel's max_download_bytes, the
    task fails with upstream_error and its hold goes back, and a normal task on the same
    channel completes meanwhile."""
    upstream = fake_world.add("openai", key="sk-huge", job_seconds=0.2)
    config = tmp_path / "vidgate.yaml"
    config.write_text(yaml.safe_dump({"channels": [{
        "name": "huge-upstream", "kind": "openai", "base_url": upstream.url,
        "api_key_env": "VG_HUGE_KEY", "models": {"sora-2": "wan"},
        "poll_min_seconds": 0.1, "poll_max_seconds": 0.5,
        "max_download_bytes": 8 * 1024 * 1024, "download_timeout_seconds": 5,
    }]}))
    url, cleanup = fresh_database_url(tmp_path)
    env = server_env(tmp_path / "data", url, VIDGATE_CONFIG=str(config),
                     VG_HUGE_KEY="sk-huge")
    server = None
    try:
        server = start_server(env, key=limited_key(env))

        def post(prompt: str) -> str:
            r = httpx.post(server.api + "/videos", headers=server.headers(), timeout=30,
                           json={"prompt": prompt, "size": "1280x720", "seconds": "4"})
            assert r.status_code == 200, r.text
            return r.json()["id"]

        huge, chunked = post("a [huge] result"), post("a [hugechunked] result")
        normal = post("an ordinary film")
        done = wait_for(lambda: all_finished(server, [huge, chunked, normal]), timeout=180,
                        interval=0.3, what="every task to end")
        assert done[normal]["status"] == "completed", done[normal]
        for task_id in (huge, chunked):
            assert done[task_id]["status"] == "failed", done[task_id]
            assert done[task_id]["error"]["code"] == "upstream_error", done[task_id]
            assert "larger than 8388608 bytes" in done[task_id]["error"]["message"]
        assert not list((tmp_path / "data").rglob("*.mp4.part"))
        server.stop()
        assert_money_and_tasks(url, [huge, chunked, normal])
    finally:
        if server is not None:
            server.stop()
        cleanup()


def test_trickling_upstream_is_bounded_by_the_deadline(tmp_path, fake_world, sample_media):
    """A result that trickles forever (never idle long enough for the read timeout) ends at
    the channel's deadline with `timeout` and its hold released; the engine serves another
    task on the same channel meanwhile."""
    upstream = fake_world.add("openai", key="sk-trickle", job_seconds=0.2)
    config = tmp_path / "vidgate.yaml"
    config.write_text(yaml.safe_dump({"channels": [{
        "name": "trickle-upstream", "kind": "openai", "base_url": upstream.url,
        "api_key_env": "VG_TRICKLE_KEY", "models": {"sora-2": "wan"},
        "poll_min_seconds": 0.1, "poll_max_seconds": 0.5,
        "download_timeout_seconds": 2, "deadline_seconds": 12,
    }]}))
    url, cleanup = fresh_database_url(tmp_path)
    env = server_env(tmp_path / "data", url, VIDGATE_CONFIG=str(config),
                     VG_TRICKLE_KEY="sk-trickle")
    server = None
    try:
        server = start_server(env, key=limited_key(env))

        def post(prompt: str) -> str:
            r = httpx.post(server.api + "/videos", headers=server.headers(), timeout=30,
                           json={"prompt": prompt, "size": "1280x720", "seconds": "4"})
            assert r.status_code == 200, r.text
            return r.json()["id"]

        slow = post("a [trickle] result")
        wait_for(lambda: any(r.method == "GET" and "/content" in r.path
                             for r in list(upstream.recorder.requests)),
                 timeout=60, what="the trickling download to start")
        normal = post("an ordinary film")
        done = wait_for(lambda: all_finished(server, [normal]), timeout=60, interval=0.3,
                        what="the other task, while the trickle goes on")
        assert done[normal]["status"] == "completed", done[normal]
        assert statuses(server, [slow])[slow]["status"] not in TERMINAL
        done = wait_for(lambda: all_finished(server, [slow]), timeout=90, interval=0.3,
                        what="the trickling task to end at its deadline")
        assert done[slow]["status"] == "failed", done[slow]
        assert done[slow]["error"]["code"] == "timeout", done[slow]
        server.stop()
        assert_money_and_tasks(url, [slow, normal])
    finally:
        if server is not None:
            server.stop()
        cleanup()
