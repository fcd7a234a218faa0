"""Running the server: logging set-up, a graceful stop, and several API processes on one port.

On SIGTERM (or Ctrl-C) the engine stops claiming at once and hands the tasks it holds back
to the database, due now, so another worker takes them without waiting for their leases to
run out; uvicorn stops accepting connections, lets requests in flight finish for up to
`graceful_shutdown_seconds`, then runs the app's shut-down (webhooks, backends, database).

With `--workers N` (`serve_many`) this process only supervises: it starts N server processes,
each with its own listening socket on the same port (SO_REUSEPORT, so the kernel spreads new
connections over them evenly), passes a SIGTERM or Ctrl-C on to each, and waits for their
graceful stops. Only the first runs the engine, webhooks and the janitor (the engine's
leases would make several correct, but one is enough to follow the tasks, and on SQLite
every engine is one more writer on a file that has one writer at a time); the others serve
HTTP only, as with VIDGATE_ROLE=api. A process that dies is started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn
from fastapi import FastAPI

from .api import errors as api_errors
from .api import ops
from .app import Gateway, create_app
from .config import Settings, load_settings
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


log = logging.getLogger("vidgate")

# A server process that exits this soon after its start is failing at start-up (a port in
# use, a bad configuration): starting it again would fail the same way, so everything stops.
_EARLY_EXIT_SECONDS = 10.0


def serve(gateway: Gateway, settings: Settings, host: str, port: int,
          access_log: bool, sockets: list[socket.socket] | None = None) -> None:
    logs.configure(settings.log_format)
    config = uvicorn.Config(
        gateway, host=host, port=port, log_level="info", loop="auto", http="auto",
        log_config=None,  # one handler for every logger: logs.configure
        # a line per request costs a fifth of a status read; opt in when wanted
        access_log=access_log,
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
    )
    _Server(config, gateway).run(sockets=sockets)
    log.info("stopped")


def serve_many(settings: Settings, workers: int, host: str, port: int,
               access_log: bool) -> None:
    """Supervise `workers` server processes on `host:port` until SIGTERM or Ctrl-C."""
    logs.configure(settings.log_format)
    spawn = multiprocessing.get_context("spawn")
    args = (host, port, access_log, settings.graceful_shutdown_seconds)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())

    def start(index: int) -> tuple[BaseProcess, float]:
        proc = spawn.Process(target=_server_process, args=(index, *args),
                             name=f"vidgate-server-{index}")
        proc.start()
        return proc, time.monotonic()

    procs = [start(i) for i in range(workers)]
    engine_note = "" if not settings.run_engine else f"; the engine runs in {procs[0][0].pid}"
    log.info("%d server processes on %s:%d%s", workers, host, port, engine_note)
    failed = False
    while not stopping.wait(0.5):
        for index, (proc, started) in enumerate(procs):
            if proc.is_alive():
                continue
            if time.monotonic() - started < _EARLY_EXIT_SECONDS:
                log.error("server process %d exited at start-up (%s); stopping",
                          proc.pid, proc.exitcode)
                failed = True
                stopping.set()
                break
            log.warning("server process %d exited (%s); starting another",
                        proc.pid, proc.exitcode)
            procs[index] = start(index)
    for proc, _ in procs:
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + settings.graceful_shutdown_seconds + 30
    for proc, _ in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            log.error("server process %d did not stop in time; killing it", proc.pid)
            proc.kill()
            proc.join()
    log.info("stopped")
    if failed:
        raise SystemExit(1)


def _server_process(index: int, host: str, port: int, access_log: bool,
                    graceful_seconds: float) -> None:
    """One of `serve_many`'s processes (started fresh, so it reads the settings itself)."""
    # Signals come from the supervisor alone: a Ctrl-C reaching every process of the
    # terminal's group as well would be a second signal, which skips the graceful wait.
    os.setpgrp()
    _stop_when_orphaned()
    settings = load_settings()
    settings.graceful_shutdown_seconds = graceful_seconds
    if index > 0:
        settings.run_engine = False
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((host, port))
    serve(create_app(settings), settings, host, port, access_log, sockets=[listener])


def _stop_when_orphaned() -> None:
    """Stop gracefully if the supervisor dies without stopping us (kill -9, a crash)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


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
