"""Running the server process: logging set-up and a graceful stop.

On SIGTERM (or Ctrl-C) the engine stops claiming at once and hands the tasks it holds back
to the database, due now, so another worker takes them without waiting for their leases to
run out; uvicorn stops accepting connections, lets requests in flight finish for up to
`graceful_shutdown_seconds`, then runs the app's shut-down (webhooks, backends, database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from types import FrameType

import uvicorn
from fastapi import FastAPI

from .api import errors as api_errors
from .api import ops
from .app import Gateway
from .config import Settings
from .observability import logs
from .services import Services


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
        self.gateway = gateway

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        engine = self.gateway.services.engine
        if engine is not None:
            engine.stop_from_signal()
        super().handle_exit(sig, frame)


def serve(gateway: Gateway, settings: Settings, host: str, port: int,
          access_log: bool) -> None:
    logs.configure(settings.log_format)
    config = uvicorn.Config(
        gateway, host=host, port=port, log_level="info", loop="auto", http="auto",
        log_config=None,  # one handler for every logger: logs.configure
        # a line per request costs a fifth of a status read; opt in when wanted
        access_log=access_log,
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
    )
    _Server(config, gateway).run()
    logging.getLogger("vidgate").info("stopped")


class _Unsignalled(uvicorn.Server):
    """A server inside a process that handles its own signals (the worker's stop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def ops_server(services: Services, host: str, port: int) -> AsyncIterator[None]:
    """`/metrics`, `/healthz` and `/readyz` of a `vidgate worker`, served on `port` for as
    long as the block lasts (the same routes and rules as the API server's)."""
    api = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    api.state.services = services
    api_errors.install(api)
    api.include_router(ops.router)
    config = uvicorn.Config(api, host=host, port=port, log_config=None, access_log=False,
                            lifespan="off")
    server = _Unsignalled(config)
    task = asyncio.create_task(server.serve())
    try:
        yield
    finally:
        server.should_exit = True
        await task
