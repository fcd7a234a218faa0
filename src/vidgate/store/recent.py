"""The operator's view of recent tasks across every key (GET /admin/tasks)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from .schema import tasks

_COLUMNS = (tasks.c.id, tasks.c.owner_id, tasks.c.family, tasks.c.model, tasks.c.status,
            tasks.c.progress, tasks.c.backend, tasks.c.error_code, tasks.c.error_message,
            tasks.c.created_at, tasks.c.status_updated_at, tasks.c.completed_at)


async def recent_tasks(engine: AsyncEngine, status: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest tasks (deleted ones included: a failure is worth seeing after the user
    deleted it), optionally in one state; newest first."""
    query = sa.select(*_COLUMNS).order_by(tasks.c.seq.desc()).limit(limit)
    if status is not None:
        query = query.where(tasks.c.status == status)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        {"id": r.id, "key_id": r.owner_id, "family": r.family, "model": r.model,
         "status": r.status, "progress": r.progress, "channel": r.backend,
         "error": {"code": r.error_code, "message": r.error_message or ""}
         if r.error_code else None,
         "created_at": r.created_at, "status_updated_at": r.status_updated_at,
         "completed_at": r.completed_at}
        for r in rows
    ]
