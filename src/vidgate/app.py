"""ASGI app factory: wires settings, storage, the task service, the engine and the routers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import FastAPI, Request
from starlette.types import Receive, Scope, Send

from .api import account, admin, files, generations, unified, videos
from .api import errors as api_errors
from .api.auth import KeyCache
from .api.hot_routes import HotRoutes
from .backends.base import Backend
from .backends.registry import make_backend
from .catalog import Catalog
from .channels import ChannelConfig, load_channels
from .config import Settings, load_settings
from .domain import Task
from .engine.janitor import Janitor
from .engine.router import Router
from .engine.scheduler import Engine
from .engine.webhooks import WebhookSender
from .images import ImagePolicy
from .ratelimit import RateLimiter
from .signing import AssetLinks, Signer
from .store.blobs import BlobStore, open_store
from .store.database import Database
from .store.keys import Keys
from .store.outbox import Outbox
from .tasks import TaskService

log = logging.getLogger("vidgate")


@dataclass
class Services:
    settings: Settings
    db: Database
    blobs: BlobStore
    tasks: TaskService
    signer: Signer
    engine: Engine | None
    limiter: RateLimiter
    webhooks: WebhookSender | None
    accounts: Keys
    janitor: Janitor | None
    key_cache: KeyCache

    def links(self, task: Task, request: Request) -> AssetLinks:
        return self.links_at(task, str(request.base_url))

    def links_at(self, task: Task, request_base_url: str) -> AssetLinks:
        """Fresh signed links, under VIDGATE_PUBLIC_URL when set, else the request's base."""
        base = self.settings.public_url or request_base_url
        return self.signer.links(task, base, time.time())


def channel_configs(settings: Settings) -> list[ChannelConfig]:
    if settings.channels is not None:
        return settings.channels
    return load_channels(settings.config_path)


def build_backends(settings: Settings) -> dict[str, Backend]:
    """One backend per configured channel, keyed by channel name."""
    return {cfg.name: make_backend(cfg, settings) for cfg in channel_configs(settings)}


def image_policy(settings: Settings) -> ImagePolicy:
    """The operator's rules for fetching reference images (SSRF guard, size, time)."""
    return ImagePolicy(
        max_bytes=settings.max_upload_bytes,
        timeout_seconds=settings.image_fetch_timeout,
        allow_private=settings.image_allow_private,
        allowed_networks=settings.image_allowed_networks,
    )


def build_services(settings: Settings) -> tuple[Services, dict[str, Backend]]:
    db = Database(settings.database_url, charge_overage=settings.charge_overage)
    blobs = open_store(settings.blob_url, settings.data_dir)
    backends = build_backends(settings)
    router = Router.build(channel_configs(settings), backends)
    catalog = Catalog()
    engine = None
    if settings.run_engine:
        engine = Engine(
            db, blobs, backends,
            work_dir=settings.work_dir,
            retention_seconds=settings.retention_seconds,
            router=router,
            lease_seconds=settings.lease_seconds,
            tick_seconds=settings.engine_tick_seconds,
            pricing=lambda task, seconds: catalog.delivered_price(
                task.model, task.width, task.height, seconds),
        )
    service = TaskService(
        db, blobs, catalog,
        image_policy=image_policy(settings),
        deadline_seconds=settings.task_deadline_seconds,
        on_created=engine.wake if engine else None,
        can_route=router.can_route,
    )
    signer = Signer(settings.secret, settings.url_ttl_seconds)
    limiter = RateLimiter(settings.redis_url)
    webhooks = None
    if settings.run_engine:
        webhooks = WebhookSender(
            Outbox(db.engine), timeout=settings.webhook_timeout,
            max_attempts=settings.webhook_max_attempts,
            backoff_seconds=settings.webhook_backoff_seconds,
        )
    janitor = Janitor(db, blobs) if settings.run_engine else None
    services = Services(settings, db, blobs, service, signer, engine, limiter, webhooks,
                        db.keys, janitor, KeyCache(settings.key_cache_seconds))
    return services, backends


@contextlib.asynccontextmanager
async def running(services: Services, backends: dict[str, Backend]) -> AsyncIterator[None]:
    """Run the background workers (engine, webhook sender) for as long as the block lasts,
    then stop them and release backends and the database."""
    workers = [w for w in (services.engine, services.webhooks, services.janitor)
               if w is not None]
    runners = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield
    finally:
        for worker in workers:
            worker.stop()
        await asyncio.gather(*runners, return_exceptions=True)
        for backend in backends.values():
            await backend.close()
        await services.db.close()


class VidgateApp(FastAPI):
    """The FastAPI app, with the hot routes (status reads, JSON creates) offered to
    `HotRoutes` before FastAPI's own middleware and routing (api/hot_routes.py says why)."""

    hot_routes: HotRoutes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.hot_routes is not None and await self.hot_routes.answer(scope, receive, send):
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    services, backends = build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.db.migrate()
        async with running(services, backends):
            yield

    app = VidgateApp(title="vidgate", version="0.1.0", lifespan=lifespan)
    app.state.services = services
    app.hot_routes = HotRoutes(services)
    api_errors.install(app)
    app.include_router(videos.router)
    app.include_router(generations.router)
    app.include_router(unified.router)
    app.include_router(files.router)
    app.include_router(account.router)
    app.include_router(admin.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"ok": True}

    return app
