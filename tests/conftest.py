from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from support import Server, fresh_database_url, server_env, start_server
from vidgate.app import create_app
from vidgate.config import Settings
from vidgate.store.database import Database


@pytest.fixture
def database_url(tmp_path: Path):
    url, cleanup = fresh_database_url(tmp_path)
    yield url
    cleanup()


@pytest.fixture
async def db(database_url):
    """The store alone, migrated, on the test database."""
    database = Database(database_url)
    await database.migrate()
    yield database
    await database.close()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    data = tmp_path / "data"
    data.mkdir()
    return Settings(
        data_dir=data,
        database_url=database_url,
        secret=b"test-secret",
        render_workers=1,
        sandbox_fps=12,
        lease_seconds=5.0,
    )


class AppClient:
    """An in-process app (lifespan running) and an httpx client bound to it."""

    def __init__(self, app, client: httpx.AsyncClient, key: str) -> None:
        self.app = app
        self.client = client
        self.key = key
        self.services = app.services

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    async def new_key(self, name: str = "other") -> str:
        _, secret = await self.services.db.create_key(name)
        return secret

    async def count_tasks(self) -> int:
        import sqlalchemy as sa

        from vidgate.store.schema import tasks

        async with self.services.db.engine.connect() as conn:
            return (await conn.execute(sa.select(sa.func.count()).select_from(tasks))).scalar()

    def blob_files(self) -> list[Path]:
        root = self.services.blobs.root
        return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture
async def app_client(settings: Settings):
    app = create_app(settings)
    async with app.lifespan():
        _, key = await app.services.db.create_key("test")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield AppClient(app, client, key)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Server:
    tmp = tmp_path_factory.mktemp("live")
    url, cleanup = fresh_database_url(tmp)
    server = start_server(server_env(tmp / "data", url))
    yield server
    server.stop()
    cleanup()
