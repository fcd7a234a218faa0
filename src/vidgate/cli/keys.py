"""`vidgate keys ...`: create, list, show, change, top up and revoke API keys."""

from __future__ import annotations

import json

import typer

from ..store.database import Database
from . import local
from .help import command, new_app

keys_app = new_app("Manage API keys.")


def usd_to_micro(value: float | None) -> int | None:
    return None if value is None else round(value * 1_000_000)


def _models(value: str | None) -> list[str] | None:
    if value is None or value.strip().lower() == "all":
        return None
    return [m.strip() for m in value.split(",") if m.strip()]


@command(keys_app, "create")
def keys_create(
    name: str = typer.Option("", metavar="NAME", help="A label for the key."),
    balance_usd: float = typer.Option(None, metavar="USD",
                                      help="Starting credit; omit for no limit."),
    rpm: int = typer.Option(None, metavar="N", help="Requests per minute."),
    max_concurrent: int = typer.Option(None, metavar="N", help="Unfinished tasks at once."),
    models: str = typer.Option(None, metavar="A,B",
                               help="Comma-separated allowed models (default: all)."),
    webhook_url: str = typer.Option(None, metavar="URL",
                                    help="Where video.completed/failed events go."),
) -> None:
    """Create an API key; the key itself is printed alone on the last line."""
    settings = {
        "balance_micro": usd_to_micro(balance_usd), "rpm_limit": rpm,
        "max_concurrent": max_concurrent, "allowed_models": _models(models),
        "webhook_url": webhook_url,
    }

    async def create(db: Database):
        return await db.create_key(name, **{k: v for k, v in settings.items()
                                            if v is not None})

    key, secret = local.write(create)
    typer.echo(f"created {key.id} {key.name}".rstrip())
    if key.webhook_secret:
        typer.echo(f"webhook secret: {key.webhook_secret}")
    typer.echo(secret)


def _print_key(key) -> None:
    """A key's settings as JSON, or exit 1 when there is no such key."""
    from ..store.keys import key_view

    if key is None:
        typer.echo("no such key", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(key_view(key), indent=2))


@command(keys_app, "show")
def keys_show(key_id: str) -> None:
    """Show a key's settings and balance as JSON."""

    async def show(db: Database):
        return await db.keys.get(key_id)

    _print_key(local.read(show))


@command(keys_app, "set")
def keys_set(
    key_id: str,
    rpm: int = typer.Option(None, metavar="N", help="Requests per minute (0 removes the limit)."),
    max_concurrent: int = typer.Option(None, metavar="N",
                                       help="Unfinished tasks (0 removes the limit)."),
    models: str = typer.Option(None, metavar="A,B",
                               help="Comma-separated allowed models, or 'all'."),
    webhook_url: str = typer.Option(None, metavar="URL",
                                    help="Webhook endpoint, or 'none' to remove it."),
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

    _print_key(local.read(update))


@command(keys_app, "topup")
def keys_topup(
    key_id: str,
    amount_usd: float = typer.Argument(..., help="Credit to add (negative to remove)."),
    note: str = typer.Option(None, metavar="TEXT", help="Recorded in the ledger."),
) -> None:
    """Add credit to a key (its first top-up turns a no-limit key into a prepaid one)."""
    from ..store.ledger import InsufficientBalance

    async def top_up(db: Database):
        return await db.keys.top_up(key_id, usd_to_micro(amount_usd), note)

    try:
        balance = local.read(top_up)
    except InsufficientBalance:
        typer.echo("the balance cannot go below zero", err=True)
        raise typer.Exit(1) from None
    if balance is None:
        typer.echo("no such key", err=True)
        raise typer.Exit(1)
    typer.echo(f"balance {balance / 1e6:.6f} USD")


@command(keys_app, "list")
def keys_list() -> None:
    """List API keys (prefixes only; keys are stored hashed)."""
    async def fetch(db: Database):
        return await db.list_keys()

    keys = local.read(fetch)
    if not keys:
        local.note("no keys yet: `vidgate keys create` makes one")
    for key in keys:
        state = "revoked" if key.revoked_at else "active"
        typer.echo(f"{key.id}\t{key.prefix}...\t{state}\t{key.name}")


@command(keys_app, "revoke")
def keys_revoke(key_or_id: str) -> None:
    """Revoke a key by its id (key_...) or by the key itself."""
    async def revoke(db: Database):
        return await db.revoke_key(key_or_id)

    if not local.read(revoke):
        typer.echo("no such active key", err=True)
        raise typer.Exit(1)
    typer.echo("revoked")
