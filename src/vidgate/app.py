"""ASGI app factory: wires settings, storage, the task service, the engine and the routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from .api import (
    account,
    admin,
    admin_views,
    callbacks,
    derived,
    events,
    families,
    files,
    models,
    openapi,
    ops,
    pages,
    videos,
)
from .api import errors as api_errors
from .api.bodies import json_limit
from .api.early_answers import EarlyAnswers
from .api.edge import UrlGuard
from .api.hot_routes import HotRoutes
from .api.key_cache import KeyCache
from .backends.base import Backend
from .backends.registry import make_backend
from .catalog import Catalog
from .channels import ChannelConfig, GatewayConfig, default_channels, load_config
from .characters import CharacterService
from .config import Settings, load_settings
from .derived import DerivedVideos
from .engine.callbacks import CallbackIntake, CallbackUrls
from .engine.janitor import Janitor
from .engine.router import Router
from .engine.scheduler import Engine
from .engine.webhooks import WebhookSender
from .images import ImagePolicy
from .observability.health import Readiness
from .observability.metrics import HttpMetrics, RouteNames
from .observability.requestids import RequestIds
from .observability.scrape import Scrape
from .ratelimit import RateLimiter
from .services import Services
from .signing import Signer
from .store.blobs import open_store
from .store.database import Database
from .store.outbox import Outbox
from .tasks import TaskService
from .watch import TaskWatch

log = logging.getLogger("vidgate")


def gateway_config(settings: Settings) -> GatewayConfig:
    """The catalog and channels: as given in the settings, else read from config_path."""
    if settings.channels is None and settings.catalog is None:
        return load_config(settings.config_path)
    catalog = settings.catalog or Catalog()
    return GatewayConfig(catalog, settings.channels or default_channels(catalog))


def channel_configs(settings: Settings) -> list[ChannelConfig]:
    return gateway_config(settings).channels


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
    catalog = gateway_config(settings).catalog
    callback_urls = CallbackUrls(settings.public_url, settings.secret)
    engine = None
    if settings.run_engine:
        engine = Engine(
            db, blobs, backends,
            work_dir=settings.work_dir,
            retention_seconds=settings.retention_seconds,
            router=router,
            lease_seconds=settings.lease_seconds,
            tick_seconds=settings.engine_tick_seconds,
            pricing=catalog.settlement_price,
            callbacks=callback_urls,
        )
    service = TaskService(
        db, blobs, catalog,
        image_policy=image_policy(settings),
        deadline_seconds=settings.task_deadline_seconds,
        on_created=engine.wake if engine else None,
        can_route=router.can_route,
    )
    signer = Signer(settings.secret, settings.url_ttl_seconds)
    limiter = RateLimiter(settings.redis_url, fail_closed=settings.ratelimit_fail_closed)
    webhooks = None
    if settings.run_engine:
        webhooks = WebhookSender(
            Outbox(db.writes), timeout=settings.webhook_timeout,
            max_attempts=settings.webhook_max_attempts,
            backoff_seconds=settings.webhook_backoff_seconds,
        )
    janitor = Janitor(db, blobs) if settings.run_engine else None
    intake = CallbackIntake(callback_urls, router, db.leases,
                            wake=engine.wake if engine else None)
    readiness = Readiness(db, blobs, engine.loop_age if engine else None,
                          max_loop_age=max(30.0, 20 * settings.engine_tick_seconds))
    scrape = Scrape(db, router.publish if engine else None)
    watch = TaskWatch(service.get)
    if engine is not None:
        engine.on_change = watch.wake
    services = Services(settings, db, blobs, service, signer, engine, limiter, webhooks,
                        db.keys, janitor, KeyCache(settings.key_cache_seconds), router,
                        watch, readiness, scrape, intake,
                        DerivedVideos(service, router),
                        CharacterService(db.characters, blobs, router))
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
        await services.watch.close()
        for worker in workers:
            worker.stop()
        await asyncio.gather(*runners, return_exceptions=True)
        for backend in backends.values():
            await backend.close()
        await services.db.close()


class Gateway:
    """The ASGI app vidgate serves: the fast path (`api/hot_routes.py`) around the FastAPI app.

    Middleware added with `add_middleware` wraps both, so it sees every request, the ones
    the fast path answers included; the last one added runs first, as in Starlette. Routes,
    OpenAPI and exception handlers stay on `api` (FastAPI); lifespan events pass through
    to it.
    """

    def __init__(self, api: FastAPI, services: Services) -> None:
        self.api = api
        self.services = services
        self.hot_routes = HotRoutes(api, services)
        self._app: ASGIApp = self.hot_routes

    @property
    def state(self) -> State:
        return self.api.state

    def add_middleware(self, cls: Callable[..., ASGIApp], **options: Any) -> None:
        self._app = cls(self._app, **options)

    def lifespan(self) -> AbstractAsyncContextManager[Any]:
        """The app's start-up and shut-down, for running it in-process (tests, tools)."""
        return self.api.router.lifespan_context(self.api)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def create_app(settings: Settings | None = None) -> Gateway:
    settings = settings or load_settings()
    services, backends = build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await services.db.migrate()
        async with running(services, backends):
            yield

    api = FastAPI(title="vidgate", version="0.1.0", lifespan=lifespan, docs_url=None,
                  redoc_url=None)  # pages.install serves them from the package
    api.state.services = services
    api_errors.install(api)
    openapi.install(api)
    api.include_router(families.router)
    api.include_router(events.router)
    api.include_router(derived.router)
    api.include_router(videos.router)
    api.include_router(files.router)
    api.include_router(account.router)
    api.include_router(admin.router)
    api.include_router(admin_views.router)
    api.include_router(models.router)
    api.include_router(ops.router)
    pages.install(api)
    api.include_router(callbacks.router)

    gateway = Gateway(api, services)
    gateway.add_middleware(UrlGuard)
    # Room for the largest body vidgate reads (a JSON base64 upload) and as much again of
    # what it refuses, so that a refusal reaches an over-sized client
    gateway.add_middleware(EarlyAnswers, drain_bytes=2 * json_limit(settings.max_upload_bytes))
    gateway.add_middleware(HttpMetrics, route_of=RouteNames(lambda: api.routes))
    gateway.add_middleware(RequestIds)  # outermost: every answer carries the id
    return gateway
