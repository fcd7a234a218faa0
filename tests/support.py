"""Test helpers: fresh databases (SQLite or PostgreSQL) and live server processes."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

# Which database the suite runs against: "sqlite" (default) or "postgresql".
TEST_DB = os.environ.get("VIDGATE_TEST_DB", "sqlite")
POSTGRES_URL = os.environ.get(
    "VIDGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def in_ci() -> bool:
    """Whether the suite runs in CI, where a missing service or tool fails a test instead of
    skipping it. CI services spell it CI=true, CI=1 or CI=yes; all count (scripts/test reads
    the variable by the same rule)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def wait_for(condition, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Poll `condition` until it returns a truthy value; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


async def await_for(condition, timeout: float = 30.0, interval: float = 0.05,
                    what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def _pg_admin(sql: str) -> None:
    import asyncpg

    url = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")

    async def run() -> None:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def fresh_database_url(tmp_dir: Path) -> tuple[str, callable]:
    """A new empty database for one test; returns (url, cleanup)."""
    if TEST_DB == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_dir / 'test.db'}", lambda: None
    if TEST_DB != "postgresql":
        raise RuntimeError(f"VIDGATE_TEST_DB must be sqlite or postgresql, not {TEST_DB!r}")
    name = "vg_" + secrets.token_hex(6)
    try:
        _pg_admin(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # the suite was asked for PostgreSQL: its absence is a failure
        raise RuntimeError(f"PostgreSQL at {POSTGRES_URL} is not usable: {exc!r}") from exc
    base = POSTGRES_URL.rsplit("/", 1)[0]

    def cleanup() -> None:
        try:
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except Exception:
            pass

    return f"{base}/{name}", cleanup


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vidgate_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from vidgate.cli import main; main()", *args]


@dataclass
class Server:
    url: str
    key: str
    proc: subprocess.Popen
    env: dict
    log_path: Path

    @property
    def api(self) -> str:
        return self.url + "/v1"

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def new_key(self, name: str = "") -> str:
        return create_key(self.env, name)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def server_env(data_dir: Path, database_url: str, **extra: str) -> dict:
    env = dict(os.environ)
    env.update({
        "VIDGATE_DATA_DIR": str(data_dir),
        "VIDGATE_DATABASE_URL": database_url,
        "VIDGATE_SANDBOX_FPS": "12",
    })
    env.update(extra)
    return env


def create_key(env: dict, name: str = "") -> str:
    out = subprocess.run(vidgate_cmd("keys", "create", "--name", name or "test"), env=env,
                         capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip().splitlines()[-1]


def start_server(env: dict, key: str | None = None, port: int | None = None,
                 args: tuple[str, ...] = ()) -> Server:
    """Start `vidgate serve` (with `args`) in its own process group; wait until it answers."""
    port = port or free_port()
    key = key or create_key(env)
    data_dir = Path(env["VIDGATE_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"server-{port}-{int(time.time() * 1000)}.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        vidgate_cmd("serve", "--host", "127.0.0.1", "--port", str(port), *args),
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    server = Server(f"http://127.0.0.1:{port}", key, proc, env, log_path)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early:\n{server.log()}")
        try:
            return httpx.get(server.url + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=60, what="the server to start")
    return server


def make_task(owner: str, hold: int = 0, **extra):
    """A queued task row for the store's own tests (no catalog, no API)."""
    from vidgate.domain import QUEUED, Task, new_task_id

    now = time.time()
    return Task(id=new_task_id(), owner_id=owner, family="videos", model="sora-2",
                prompt="p", width=1280, height=720, seconds=4, seed=0, status=QUEUED,
                progress=0, created_at=int(now), status_updated_at=int(now),
                deadline_at=now + 3600.25, next_poll_at=now, hold_micro=hold, **extra)


def needs_postgresql(what: str) -> None:
    """Skip unless the suite runs on PostgreSQL (VIDGATE_TEST_DB=postgresql)."""
    if TEST_DB != "postgresql":
        pytest.skip(f"{what}: runs with VIDGATE_TEST_DB=postgresql")
