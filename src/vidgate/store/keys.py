"""API keys and their accounts: creation, lookup, revocation, settings, top-ups, ledger, usage.

Does a revoked key count? Every lookup here (`get`, `for_hash`, `list`) returns a key whatever
its state, with `revoked_at` set once revoked, so the admin API and the CLI show revoked keys
as they are. Whether a key may be used is `ApiKey.usable` (domain.py), which authentication
and task creation check; nothing here decides it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import secrets
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ..domain import COMPLETED, ApiKey
from . import ledger as ledger_ops
from .pg_direct import PgDirect
from .schema import api_keys, characters, ledger, tasks
from .sqlite_reads import SqliteRows
from .writes import Writes

# Fields of a key an operator may change after creation.
EDITABLE = ("name", "rpm_limit", "max_concurrent", "allowed_models", "webhook_url")

_KEY_FIELDS = [f.name for f in dataclasses.fields(ApiKey)]
KEY_BY_ID = sa.select(api_keys).where(api_keys.c.id == sa.bindparam("key_id"))
KEY_BY_HASH = sa.select(api_keys).where(api_keys.c.key_hash == sa.bindparam("digest"))
# The key as a create reads it: with whether it has stored characters, so that the create
# looks for characters in its prompt only when there are some (one read, not two, per create).
KEY_FOR_CREATE = sa.select(
    api_keys,
    sa.exists().where(characters.c.owner_id == api_keys.c.id).label("has_characters"),
).where(api_keys.c.id == sa.bindparam("key_id"))


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def key_from_mapping(mapping: Any) -> ApiKey:
    return ApiKey(**{name: mapping[name] for name in _KEY_FIELDS})


class Keys:
    def __init__(self, engine: AsyncEngine, writes: Writes,
                 rows: SqliteRows | PgDirect | None = None) -> None:
        self.engine = engine
        self.writes = writes
        self._rows = rows  # the fast path's one-row reads, when there is one

    async def create(self, name: str = "", **settings: Any) -> tuple[ApiKey, str]:
        """Create a key; `settings` are ApiKey fields (limits, webhook_url, ...).

        A starting balance is recorded as a top-up so the ledger explains every balance.
        """
        secret = "sk-vg-" + secrets.token_urlsafe(32)
        balance = settings.pop("balance_micro", None)
        if settings.get("webhook_url") and not settings.get("webhook_secret"):
            settings["webhook_secret"] = new_webhook_secret()
        key = ApiKey(
            id="key_" + secrets.token_hex(8),
            name=name,
            prefix=secret[:12],
            created_at=int(time.time()),
            revoked_at=None,
            **settings,
        )
        row = {k: v for k, v in dataclasses.asdict(key).items() if k != "balance_micro"}

        def insert(conn: sa.Connection) -> None:
            conn.execute(api_keys.insert().values(**row, key_hash=hash_key(secret)))
            if balance is not None:
                ledger_ops.top_up(conn, key.id, balance, "initial balance")

        await self.writes.run(insert)
        if balance is not None:
            key.balance_micro = balance
        return key, secret

    async def for_hash(self, digest: str) -> ApiKey | None:
        """The key whose secret hashes to `digest` (authentication), revoked or not."""
        return await self._one(KEY_BY_HASH, {"digest": digest})

    async def get(self, key_id: str) -> ApiKey | None:
        """The key, revoked or not (see the module's docstring)."""
        return await self._one(KEY_BY_ID, {"key_id": key_id})

    async def for_create(self, key_id: str) -> tuple[ApiKey, bool] | None:
        """The key (as `get`) and whether it has stored characters."""
        found = await self._row(KEY_FOR_CREATE, {"key_id": key_id})
        return (key_from_mapping(found), bool(found["has_characters"])) if found else None

    async def _one(self, stmt: sa.Select, values: dict[str, Any]) -> ApiKey | None:
        found = await self._row(stmt, values)
        return key_from_mapping(found) if found else None

    async def _row(self, stmt: sa.Select, values: dict[str, Any]) -> Any:
        if self._rows is not None:
            return await self._rows.one(stmt, values)
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt, values)).first()
        return row._mapping if row else None

    async def list(self) -> list[ApiKey]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at))).all()
        return [key_from_mapping(r._mapping) for r in rows]

    async def revoke(self, key_or_id: str) -> bool:
        cond = sa.or_(api_keys.c.id == key_or_id, api_keys.c.key_hash == hash_key(key_or_id))
        stmt = (api_keys.update()
                .where(cond, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=int(time.time())))
        return await self.writes.run(lambda conn: conn.execute(stmt).rowcount) > 0

    async def update(self, key_id: str, changes: dict[str, Any],
                     rotate_webhook_secret: bool = False) -> ApiKey | None:
        values = {k: v for k, v in changes.items() if k in EDITABLE}
        current = await self.get(key_id)
        if current is None:
            return None
        url = values.get("webhook_url", current.webhook_url)
        if url and (rotate_webhook_secret or not current.webhook_secret):
            values["webhook_secret"] = new_webhook_secret()
        if values:
            stmt = api_keys.update().where(api_keys.c.id == key_id).values(**values)
            await self.writes.run(lambda conn: conn.execute(stmt).rowcount)
        return await self.get(key_id)

    async def top_up(self, key_id: str, amount_micro: int, note: str | None = None) -> int | None:
        """Add (or, negative, remove) credit; returns the new balance, None for unknown keys.

        Raises ledger.InsufficientBalance if a deduction would take the balance below zero.
        """
        return await self.writes.run(
            lambda conn: ledger_ops.top_up(conn, key_id, amount_micro, note))

    async def ledger(self, key_id: str | None = None, limit: int = 100) -> list[dict]:
        query = sa.select(ledger).order_by(ledger.c.id.desc()).limit(limit)
        if key_id:
            query = query.where(ledger.c.key_id == key_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            {"id": r.id, "key_id": r.key_id, "task_id": r.task_id, "kind": r.kind,
             "amount_micro": r.amount_micro, "created_at": r.created_at, "note": r.note}
            for r in rows
        ]

    async def ledger_sum(self, key_id: str) -> int:
        async with self.engine.connect() as conn:
            total = (await conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(ledger.c.amount_micro), 0))
                .where(ledger.c.key_id == key_id)
            )).scalar()
        return int(total)

    async def usage(self, key_id: str | None = None, since: int | None = None,
                    until: int | None = None) -> list[dict]:
        """Finished tasks by key, model and UTC day: counts, seconds delivered and cost."""
        day = (tasks.c.completed_at // 86400).label("day")
        completed = sa.case((tasks.c.status == COMPLETED, 1), else_=0)
        query = (
            sa.select(
                tasks.c.owner_id, tasks.c.model, day,
                sa.func.sum(completed).label("completed"),
                sa.func.count().label("finished"),
                sa.func.coalesce(sa.func.sum(tasks.c.delivered_seconds), 0.0).label("seconds"),
                sa.func.coalesce(sa.func.sum(tasks.c.cost_micro), 0).label("cost"),
            )
            .where(tasks.c.completed_at.is_not(None))
            .group_by(tasks.c.owner_id, tasks.c.model, day)
            .order_by(day, tasks.c.owner_id, tasks.c.model)
        )
        if key_id:
            query = query.where(tasks.c.owner_id == key_id)
        if since is not None:
            query = query.where(tasks.c.completed_at >= since)
        if until is not None:
            query = query.where(tasks.c.completed_at < until)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            {
                "key_id": r.owner_id,
                "model": r.model,
                "day": dt.datetime.fromtimestamp(int(r.day) * 86400, tz=dt.UTC).date().isoformat(),
                "tasks_completed": int(r.completed),
                "tasks_failed": int(r.finished) - int(r.completed),
                "seconds_delivered": round(float(r.seconds), 3),
                "cost_micro": int(r.cost),
            }
            for r in rows
        ]


def key_view(key: ApiKey) -> dict[str, Any]:
    """A key as operators see it: never the key itself, only its prefix."""
    return {
        "id": key.id,
        "object": "api_key",
        "name": key.name,
        "prefix": key.prefix,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "unlimited": key.unlimited,
        "balance_micro": key.balance_micro,
        "rpm_limit": key.rpm_limit,
        "max_concurrent": key.max_concurrent,
        "allowed_models": key.allowed_models,
        "webhook_url": key.webhook_url,
        "webhook_secret": key.webhook_secret,
    }
