"""Command line: serve, worker, keys, usage, ledger, migrate, check-config."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Annotated

import typer

from .catalog import Model
from .channels import ChannelConfig
from .config import load_settings
from .store.database import Database

app = typer.Typer(help="vidgate: a self-hosted, Sora-compatible video generation gateway.",
                  no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _run(coro):
    return asyncio.run(coro)


async def _with_db(fn):
    settings = load_settings()
    db = Database(settings.database_url)
    try:
        await db.migrate()
        return await fn(db)
    finally:
        await db.close()


def _first_key_banner(secret: str, host: str, port: int) -> str:
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return (
        "\nNo API keys existed, so vidgate created one. It is shown only this once:\n\n"
        f"    {secret}\n\n"
        "Try the first example of the docs:\n\n"
        f"curl -X POST http://{shown_host}:{port}/v1/video/generations \\\n"
        '  -H "Content-Type: application/json" \\\n'
        f'  -H "Authorization: Bearer {secret}" \\\n'
        "  -d '{\n"
        '    "model": "sora-2",\n'
        '    "prompt": "A serene Japanese garden in spring, with cherry blossoms gently falling",\n'
        '    "size": "1280x720",\n'
        '    "duration": 5\n'
        "  }'\n"
    )


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    access_log: bool = typer.Option(False, help="Log every request (VIDGATE_ACCESS_LOG=1)."),
    timeout_graceful_shutdown: float = typer.Option(
        None, help="Seconds to let requests finish on SIGTERM "
                   "(VIDGATE_GRACEFUL_SHUTDOWN_SECONDS, default 5)."),
) -> None:
    """Run the API server (and, unless VIDGATE_ROLE=api, the task engine)."""
    from .app import create_app
    from .serving import serve as run_server

    async def ensure_key(db: Database) -> str | None:
        if await db.list_keys():
            return None
        _, secret = await db.create_key("first key")
        return secret

    secret = _run(_with_db(ensure_key))
    if secret:
        typer.echo(_first_key_banner(secret, host, port))
    settings = load_settings()
    if timeout_graceful_shutdown is not None:
        settings.graceful_shutdown_seconds = timeout_graceful_shutdown
    run_server(create_app(settings), settings, host, port, access_log or settings.access_log)


@app.command()
def worker(
    host: str = typer.Option("127.0.0.1", help="Address of /metrics, /healthz, /readyz."),
    port: int = typer.Option(None, help="Serve /metrics, /healthz and /readyz on this port."),
) -> None:
    """Run only the task engine (for deployments with separate API processes)."""
    from .app import build_services, running
    from .observability import logs
    from .serving import ops_server

    settings = load_settings()
    logs.configure(settings.log_format)
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

    _run(main())


@app.command()
def usage(
    key: str = typer.Option(None, help="Only this key id."),
) -> None:
    """Finished tasks, seconds delivered and cost by key, model and day (JSON lines)."""

    async def read(db: Database):
        return await db.keys.usage(key)

    for row in _run(_with_db(read)):
        typer.echo(json.dumps(row))


@app.command()
def ledger(
    key: str = typer.Option(None, help="Only this key id."),
    limit: int = typer.Option(100, help="Newest rows first."),
) -> None:
    """Balance movements (top-ups, holds, refunds), newest first (JSON lines)."""

    async def read(db: Database):
        return await db.keys.ledger(key, limit)

    for row in _run(_with_db(read)):
        typer.echo(json.dumps(row))


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    async def noop(db: Database) -> None:
        return None

    _run(_with_db(noop))
    typer.echo("database is up to date")


@app.command("check-config")
def check_config(
    path: Annotated[Path | None, typer.Argument(
        help="The file to check (default: VIDGATE_CONFIG).")] = None,
) -> None:
    """Check a vidgate.yaml and show each public model with the channels that serve it."""
    from .channels import load_or_exit

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


def _usd_to_micro(value: float | None) -> int | None:
    return None if value is None else round(value * 1_000_000)


def _models(value: str | None) -> list[str] | None:
    if value is None or value.strip().lower() == "all":
        return None
    return [m.strip() for m in value.split(",") if m.strip()]


@keys_app.command("create")
def keys_create(
    name: str = typer.Option("", help="A label for the key."),
    balance_usd: float = typer.Option(None, help="Starting credit; omit for no limit."),
    rpm: int = typer.Option(None, help="Requests per minute."),
    max_concurrent: int = typer.Option(None, help="Unfinished tasks at once."),
    models: str = typer.Option(None, help="Comma-separated allowed models (default: all)."),
    webhook_url: str = typer.Option(None, help="Where video.completed/failed events go."),
) -> None:
    """Create an API key; the key itself is printed alone on the last line."""
    settings = {
        "balance_micro": _usd_to_micro(balance_usd), "rpm_limit": rpm,
        "max_concurrent": max_concurrent, "allowed_models": _models(models),
        "webhook_url": webhook_url,
    }

    async def create(db: Database):
        return await db.create_key(name, **{k: v for k, v in settings.items()
                                            if v is not None})

    key, secret = _run(_with_db(create))
    typer.echo(f"created {key.id} {key.name}".rstrip())
    if key.webhook_secret:
        typer.echo(f"webhook secret: {key.webhook_secret}")
    typer.echo(secret)


def _print_key(key) -> None:
    """A key's settings as JSON, or exit 1 when there is no such key."""
    from .store.keys import key_view

    if key is None:
        typer.echo("no such key", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(key_view(key), indent=2))


@keys_app.command("show")
def keys_show(key_id: str) -> None:
    """Show a key's settings and balance as JSON."""

    async def show(db: Database):
        return await db.keys.get(key_id)

    _print_key(_run(_with_db(show)))


@keys_app.command("set")
def keys_set(
    key_id: str,
    rpm: int = typer.Option(None, help="Requests per minute (0 removes the limit)."),
    max_concurrent: int = typer.Option(None, help="Unfinished tasks (0 removes the limit)."),
    models: str = typer.Option(None, help="Comma-separated allowed models, or 'all'."),
    webhook_url: str = typer.Option(None, help="Webhook endpoint, or 'none' to remove it."),
    rotate_webhook_secret: bool = typer.Option(False, help="Issue a new webhook secret."),
) -> None:
    """Change a key's limits, allowed models or webhook."""

    changes: dict = {}
    if rpm is not None:
        changes["rpm_limit"] = rpm or None
    if max_concurrent is not None:
        changes["max_concurrent"] = max_concurrent or None
    if models is not None:
        changes["allowed_models"] = _models(models)
    if webhook_url is not None:
        changes["webhook_url"] = None if webhook_url.lower() == "none" else webhook_url

    async def update(db: Database):
        return await db.keys.update(key_id, changes, rotate_webhook_secret)

    _print_key(_run(_with_db(update)))


@keys_app.command("topup")
def keys_topup(
    key_id: str,
    amount_usd: float = typer.Argument(..., help="Credit to add (negative to remove)."),
    note: str = typer.Option(None, help="Recorded in the ledger."),
) -> None:
    """Add credit to a key (its first top-up turns a no-limit key into a prepaid one)."""
    from .store.ledger import InsufficientBalance

    async def top_up(db: Database):
        return await db.keys.top_up(key_id, _usd_to_micro(amount_usd), note)

    try:
        balance = _run(_with_db(top_up))
    except InsufficientBalance:
        typer.echo("the balance cannot go below zero", err=True)
        raise typer.Exit(1) from None
    if balance is None:
        typer.echo("no such key", err=True)
        raise typer.Exit(1)
    typer.echo(f"balance {balance / 1e6:.6f} USD")


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (prefixes only; keys are stored hashed)."""
    async def fetch(db: Database):
        return await db.list_keys()

    for key in _run(_with_db(fetch)):
        state = "revoked" if key.revoked_at else "active"
        typer.echo(f"{key.id}\t{key.prefix}...\t{state}\t{key.name}")


@keys_app.command("revoke")
def keys_revoke(key_or_id: str) -> None:
    """Revoke a key by its id (key_...) or by the key itself."""
    async def revoke(db: Database):
        return await db.revoke_key(key_or_id)

    if not _run(_with_db(revoke)):
        typer.echo("no such active key", err=True)
        raise typer.Exit(1)
    typer.echo("revoked")


def main() -> None:
    app()
