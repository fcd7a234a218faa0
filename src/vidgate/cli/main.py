"""Command line: serve, worker, generate, videos, keys, usage, ledger, migrate, check-config."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated

import typer

from ..catalog import Model
from ..channels import ChannelConfig
from ..config import load_settings
from ..store.database import Database
from . import local
from .banner import first_key_banner
from .generate import generate
from .help import command, new_app
from .keys import keys_app
from .videos import videos_app

app = new_app("vidgate: a self-hosted, Sora-compatible video generation gateway.")
app.add_typer(keys_app, name="keys")
app.add_typer(videos_app, name="videos")
command(app)(generate)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"vidgate {package_version('vidgate')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """vidgate: a self-hosted, Sora-compatible video generation gateway."""


@command(app)
def serve(
    host: str = typer.Option("127.0.0.1", metavar="ADDRESS", help="Address to listen on."),
    port: int = typer.Option(8000, metavar="PORT", help="Port to listen on."),
    access_log: bool = typer.Option(False, help="Log every request (VIDGATE_ACCESS_LOG=1)."),
    timeout_graceful_shutdown: float = typer.Option(
        None, metavar="SECONDS", help="Seconds to let requests finish on SIGTERM "
                                      "(VIDGATE_GRACEFUL_SHUTDOWN_SECONDS, default 5)."),
    workers: int = typer.Option(
        1, min=1, metavar="N", help="API processes sharing the port; the first also runs "
                                    "the task engine (unless VIDGATE_ROLE=api)."),
) -> None:
    """Run the API server (and, unless VIDGATE_ROLE=api, the task engine)."""
    from ..app import create_app
    from ..serving import serve as run_server
    from ..serving import serve_many

    async def ensure_key(db: Database) -> str | None:
        if await db.list_keys():
            return None
        _, secret = await db.create_key("first key")
        return secret

    secret = local.write(ensure_key)
    if secret:
        typer.echo(first_key_banner(secret, host, port))
    settings = load_settings()
    if timeout_graceful_shutdown is not None:
        settings.graceful_shutdown_seconds = timeout_graceful_shutdown
    if workers > 1:
        serve_many(settings, workers, host, port, access_log or settings.access_log)
        return
    run_server(create_app(settings), settings, host, port, access_log or settings.access_log)


@command(app)
def worker(
    host: str = typer.Option("127.0.0.1", metavar="ADDRESS",
                             help="Address of /metrics, /healthz, /readyz."),
    port: int = typer.Option(None, metavar="PORT",
                             help="Serve /metrics, /healthz and /readyz on this port."),
) -> None:
    """Run only the task engine (for deployments with separate API processes)."""
    from ..app import build_services, running
    from ..observability import logs
    from ..serving import ops_server

    settings = load_settings()
    logs.configure(settings.log_format)
    local.note(f"using {local.locate().describe()}")
    settings.run_engine = True
    services, backends = build_services(settings)

    async def main() -> None:
        await services.db.migrate()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with running(services, backends):
            if port is None:
                await stop.wait()
            else:
                async with ops_server(services, host, port):
                    await stop.wait()

    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        runner.run(main())


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed, the loop `vidgate serve` gets (uvicorn's "auto"): a
    worker's polls and database round trips are mostly loop and socket work, and on
    PostgreSQL its CPU per task followed fell ~10% on uvloop (bench/RESULTS.md, "Engine CPU
    per task on PostgreSQL"). None: asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


@command(app)
def usage(
    key: str = typer.Option(None, metavar="KEY_ID", help="Only this key id."),
) -> None:
    """Finished tasks, seconds delivered and cost by key, model and day (JSON lines)."""

    async def read(db: Database):
        return await db.keys.usage(key)

    for row in local.read(read):
        typer.echo(json.dumps(row))


@command(app)
def ledger(
    key: str = typer.Option(None, metavar="KEY_ID", help="Only this key id."),
    limit: int = typer.Option(100, metavar="N", help="Newest rows first."),
) -> None:
    """Balance movements (top-ups, holds, refunds), newest first (JSON lines)."""

    async def read(db: Database):
        return await db.keys.ledger(key, limit)

    for row in local.read(read):
        typer.echo(json.dumps(row))


@command(app)
def migrate() -> None:
    """Create or upgrade the database schema."""
    async def noop(db: Database) -> None:
        return None

    local.write(noop)
    typer.echo("database is up to date")


@command(app, "check-config")
def check_config(
    path: Annotated[Path | None, typer.Argument(
        help="The file to check (default: VIDGATE_CONFIG).")] = None,
) -> None:
    """Check a vidgate.yaml and show each public model with the channels that serve it."""
    from ..channels import load_or_exit

    if path is None and os.environ.get("VIDGATE_CONFIG"):
        path = Path(os.environ["VIDGATE_CONFIG"])
    gateway = load_or_exit(path)  # exits 1 with start-up's own messages
    typer.echo(f"{path}: ok" if path else "no configuration file: built-in models, sandbox")
    for model in gateway.catalog.models.values():
        typer.echo("")
        for line in describe_model(model, gateway.channels_for(model.name)):
            typer.echo(line)


def describe_model(model: Model, channels: list[ChannelConfig]) -> list[str]:
    """What check-config prints about one model: its limits, prices and channels."""
    aliases = f" (aliases: {', '.join(model.aliases)})" if model.aliases else ""
    last = "larger" if len(model.prices) > 1 else "any size"
    tiers = [f"{'up to ' + t.max_size if t.max_size else last}: "
             f"{t.micro_usd_per_second / 1e6:g} USD/s" for t in model.prices]
    lines = [
        f"{model.name}{aliases}",
        f"  sizes: {', '.join(model.sizes)} (default: "
        f"{model.default_size or 'the route family default'})",
        f"  seconds: {', '.join(str(s) for s in model.seconds)} "
        f"(default: {model.default_seconds})",
        f"  prices: {'; '.join(tiers)}",
    ]
    if not channels:
        lines.append("  channels: none (creates fail with no_available_channel)")
    for ch in channels:
        limits = [f"kind {ch.kind}", f"priority {ch.priority}"]
        if ch.models[model.name] != model.name:
            limits.append(f"upstream model {ch.models[model.name]}")
        if ch.sizes is not None:
            limits.append(f"sizes {', '.join(s for s in ch.sizes if s in model.sizes)}")
        if ch.seconds is not None:
            limits.append(f"seconds {', '.join(str(s) for s in ch.seconds)}")
        lines.append(f"  channel {ch.name}: {'; '.join(limits)}")
    return lines


def main() -> None:
    app()
