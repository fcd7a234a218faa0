"""ASGI app factory: wires settings, storage, the task service, the engine and the routers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import FastAPI, Request

from .api import errors as api_errors
from .api import files, videos
from .backends.base import Backend
from .backends.sandbox import SandboxBackend
from .catalog import Catalog
from .config import Settings, load_settings
from .domain import Task
from .engine.scheduler import Engine
from .images import ImagePolicy
from .signing import AssetLinks, Signer
from .store.blobs import LocalBlobStore
from .store.db import Database
from .tasks import TaskService

log = logging.getLogger("vidgate")


@dataclass
class Services:
    settings: Settings
    db: Database
    blobs: LocalBlobStore
    tasks: TaskService
    signer: Signer
    engine: Engine | None

    def links(self, task: Task, request: Request) -> AssetLinks:
        base = self.settings.public_url or str(request.base_url)
        return self.signer.links(task, base, time.time())


def build_backends(settings: Settings) -> dict[str, Backend]:
    return {
        "sandbox": SandboxBackend(workers=settings.render_workers, fps=settings.sandbox_fps),
    }


def build_services(settings: Settings) -> tuple[Services, dict[str, Backend]]:
    db = Database(settings.database_url)
    blobs = LocalBlobStore(settings.blob_dir)
    backends = build_backends(settings)
    engine = None
    if settings.run_engine:
        engine = Engine(
            db, blobs, backends,
            work_dir=settings.work_dir,
            retention_seconds=settings.retention_seconds,
            lease_seconds=settings.lease_seconds,
            tick_seconds=settings.engine_tick_seconds,
        )
    service = TaskService(
        db, blobs, Catalog(),
        image_policy=ImagePolicy(max_bytes=settings.max_upload_bytes),
        deadline_seconds=settings.task_deadline_seconds,
        on_created=engine.wake if engine else None,
    )
    signer = Signer(settings.secret, settings.url_ttl_seconds)
    return Services(settings, db, blobs, service, signer, engine), backends


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    services, backends = build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.db.migrate()
        runner = None
        if services.engine is not None:
            runner = asyncio.create_task(services.engine.run())
        try:
            yield
        finally:
            if services.engine is not None and runner is not None:
                services.engine.stop()
                await runner
            for backend in backends.values():
                await backend.close()
            await services.db.close()

    app = FastAPI(title="vidgate", version="0.1.0", lifespan=lifespan)
    app.state.services = services
    api_errors.install(app)
    app.include_router(videos.router)
    app.include_router(files.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"ok": True}

    return app
