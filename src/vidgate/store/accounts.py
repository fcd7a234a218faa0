"""Account operations shared by the admin API and the CLI: settings, top-ups, ledger, usage."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from . import ledger as ledger_ops
from .db import ApiKey, Database, key_from_row, new_webhook_secret
from .schema import api_keys, ledger, tasks

# Fields of a key an operator may change after creation.
EDITABLE = ("name", "rpm_limit", "max_concurrent", "allowed_models", "webhook_url")


class Accounts:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.engine = db.engine

    async def get(self, key_id: str) -> ApiKey | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id))).first()
        return key_from_row(row) if row else None

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
            async with self.engine.begin() as conn:
                await conn.execute(
                    api_keys.update().where(api_keys.c.id == key_id).values(**values)
                )
        return await self.get(key_id)

    async def top_up(self, key_id: str, amount_micro: int, note: str | None = None) -> int | None:
        """Add (or, negative, remove) credit; returns the new balance, None for unknown keys.

        Raises ledger.InsufficientBalance if a deduction would take the balance below zero.
        """
        async with self.engine.begin() as conn:
            return await ledger_ops.top_up(conn, key_id, amount_micro, note)

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
        completed = sa.case((tasks.c.status == "completed", 1), else_=0)
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
