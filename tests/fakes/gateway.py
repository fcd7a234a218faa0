"""An in-process vidgate (engine running) configured with channels that point at fakes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import sqlalchemy as sa

from vidgate.app import create_app
from vidgate.channels import ChannelConfig
from vidgate.config import Settings
from vidgate.domain import Task
from vidgate.store.schema import task_events, tasks
from vidgate.store.tasks import task_from_row

from .upstream import FakeUpstream

# Quick pacing so a test sees many polls in little time; the shapes stay the production ones.
FAST = {
    "poll_min_seconds": 0.05,
    "poll_max_seconds": 0.3,
    "timeout_seconds": 1.0,
    "connect_timeout_seconds": 1.0,
    "download_timeout_seconds": 2.0,
    "failure_threshold": 5,
    "cooldown_seconds": 0.5,
    "allow_private_result_urls": True,  # the foreign file host lives on 127.0.0.2
}


def channel_for(upstream: FakeUpstream, name: str, **overrides) -> ChannelConfig:
    """A channel config for a fake; the key goes through an environment variable, as in
    production."""
    env = f"VG_TEST_KEY_{name.upper().replace('-', '_')}"
    os.environ[env] = upstream.key
    fields = {"name": name, "kind": upstream.kind, "base_url": upstream.url,
              "api_key_env": env, "models": {"sora-2": f"{name}-model",
                                             "sora-2-pro": f"{name}-pro"},
              **FAST, **overrides}
    return ChannelConfig(**fields)


class Gateway:
    def __init__(self, app, client: httpx.AsyncClient, key: str) -> None:
        self.app = app
        self.client = client
        self.key = key
        self.services = app.services
        self.db = self.services.db

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def create(self, **body) -> dict:
        r = await self.client.post("/v1/videos", json=body, headers=self.headers())
        assert r.status_code == 200, r.text
        return r.json()

    async def get(self, video_id: str) -> dict:
        r = await self.client.get(f"/v1/videos/{video_id}", headers=self.headers())
        assert r.status_code == 200, r.text
        return r.json()

    async def rows(self) -> dict[str, Task]:
        """Every task row, deleted ones included."""
        async with self.db.engine.connect() as conn:
            return {r.id: task_from_row(r) for r in (await conn.execute(sa.select(tasks))).all()}

    async def terminal_events(self) -> list[tuple[str, str]]:
        query = sa.select(task_events.c.task_id, task_events.c.kind).where(
            task_events.c.kind.in_(("completed", "failed")))
        async with self.db.engine.connect() as conn:
            return [(r[0], r[1]) for r in (await conn.execute(query)).all()]

    async def all_finished(self) -> bool:
        async with self.db.engine.connect() as conn:
            left = (await conn.execute(sa.select(sa.func.count()).select_from(tasks).where(
                tasks.c.status.in_(("queued", "in_progress"))))).scalar()
        return left == 0


@contextlib.asynccontextmanager
async def gateway(tmp_path: Path, database_url: str, channels: list[ChannelConfig],
                  **settings: object) -> AsyncIterator[Gateway]:
    data = tmp_path / "gateway-data"
    data.mkdir(exist_ok=True)
    config = Settings(data_dir=data, database_url=database_url, secret=b"test-secret",
                      render_workers=1, sandbox_fps=12, lease_seconds=10.0,
                      engine_tick_seconds=0.05, channels=channels, **settings)
    app = create_app(config)
    async with app.lifespan():
        _, key = await app.services.db.create_key("test")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                     timeout=30) as client:
            yield Gateway(app, client, key)
