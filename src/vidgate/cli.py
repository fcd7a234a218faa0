"""Command line: serve, worker, keys, migrate."""

from __future__ import annotations

import asyncio
import logging
import signal

import typer

from .config import load_settings
from .store.db import Database

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
) -> None:
    """Run the API server (and, unless VIDGATE_ROLE=api, the task engine)."""
    import uvicorn

    from .app import create_app

    async def ensure_key(db: Database) -> str | None:
        if await db.list_keys():
            return None
        _, secret = await db.create_key("first key")
        return secret

    secret = _run(_with_db(ensure_key))
    if secret:
        typer.echo(_first_key_banner(secret, host, port))
    settings = load_settings()
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info",
                loop="auto", http="auto")


@app.command()
def worker() -> None:
    """Run only the task engine (for deployments with separate API processes)."""
    from .app import build_services

    logging.basicConfig(level=logging.INFO)
    settings = load_settings()
    services, backends = build_services(settings)
    assert services.engine is not None

    async def main() -> None:
        await services.db.migrate()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, services.engine.stop)
        try:
            await services.engine.run()
        finally:
            for backend in backends.values():
                await backend.close()
            await services.db.close()

    _run(main())


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema."""
    async def noop(db: Database) -> None:
        return None

    _run(_with_db(noop))
    typer.echo("database is up to date")


@keys_app.command("create")
def keys_create(name: str = typer.Option("", help="A label for the key.")) -> None:
    """Create an API key; the key itself is printed alone on the last line."""
    async def create(db: Database):
        return await db.create_key(name)

    key, secret = _run(_with_db(create))
    typer.echo(f"created {key.id} {key.name}".rstrip())
    typer.echo(secret)


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
