"""Database access: engine set-up, migrations, and every query the app runs.

SQLite (aiosqlite) by default, PostgreSQL (asyncpg) when VIDGATE_DATABASE_URL says so. Queries
are SQLAlchemy Core and portable: claiming uses a conditional UPDATE whose row count decides
who won, which is correct on both databases without SKIP LOCKED.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import secrets
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..domain import ACTIVE, Task
from . import ledger as ledger_ops
from .schema import api_keys, task_events, tasks
from .sqlite_reads import SqliteRows, sqlite_file
from .sqlite_writes import HoldRefused, SqliteTaskWriter, TooManyActive

_TASK_FIELDS = {f.name for f in dataclasses.fields(Task)}
_TASK_COLUMNS = [f.name for f in dataclasses.fields(Task) if f.name != "seq"]
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class ConcurrencyLimitReached(Exception):
    pass


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _row_to_task(row: Any) -> Task:
    return _task_from_mapping(row._mapping)


def _task_from_mapping(mapping: Any) -> Task:
    data = {k: v for k, v in mapping.items() if k in _TASK_FIELDS}
    data["cancel_requested"] = bool(data.get("cancel_requested"))
    return Task(**data)


def _task_values(task: Task) -> dict[str, Any]:
    """The row to insert (`seq` is the database's). Shallow: dataclasses.asdict deep-copied
    every value and was a sixth of a create."""
    return {name: getattr(task, name) for name in _TASK_COLUMNS}


@dataclasses.dataclass
class ApiKey:
    id: str
    name: str
    prefix: str
    created_at: int
    revoked_at: int | None
    balance_micro: int | None = None       # None: no limit
    rpm_limit: int | None = None
    max_concurrent: int | None = None
    allowed_models: list[str] | None = None  # None: every model
    webhook_url: str | None = None
    webhook_secret: str | None = None

    @property
    def unlimited(self) -> bool:
        return self.balance_micro is None


class Database:
    def __init__(self, url: str, *, charge_overage: bool = False) -> None:
        self.url = url
        # operator policy: a video longer than held is charged beyond the hold (never below 0)
        self.charge_overage = charge_overage
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
            # SQLite has one writer at a time. With several pooled connections, this
            # process's concurrent writers met in SQLite's busy handler, which sleeps and
            # retries (creates at 32 clients had p99 1.1 s before they got their own writer
            # below); one connection makes them wait their turn in asyncio instead.
            kwargs.update(pool_size=1, max_overflow=0)
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        # On an SQLite file, one-task reads skip the async adapter (see sqlite_reads),
        # and new tasks are written in batches by one thread (see sqlite_writes).
        path = sqlite_file(url) if self.is_sqlite else None
        self._rows = SqliteRows(path) if path else None
        self._writer = SqliteTaskWriter(path) if path else None

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close)
        if self._rows is not None:
            self._rows.close()
        await self.engine.dispose()

    # ---- schema -------------------------------------------------------------------------

    async def migrate(self) -> None:
        """Bring the schema to the newest revision; safe to run from many processes at once."""
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7164720113)"))
            await conn.run_sync(_upgrade)

    # ---- api keys -----------------------------------------------------------------------

    async def create_key(self, name: str = "", **settings: Any) -> tuple[ApiKey, str]:
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
        async with self.engine.begin() as conn:
            await conn.execute(
                api_keys.insert().values(
                    **{k: v for k, v in dataclasses.asdict(key).items() if k != "balance_micro"},
                    key_hash=hash_key(secret),
                )
            )
            if balance is not None:
                await ledger_ops.top_up(conn, key.id, balance, "initial balance")
                key.balance_micro = balance
        return key, secret

    async def key_for_hash(self, digest: str) -> ApiKey | None:
        query = sa.select(api_keys).where(api_keys.c.key_hash == digest)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return key_from_row(row) if row else None

    async def get_key(self, key_id: str) -> ApiKey | None:
        """A key that can still be used (not revoked)."""
        if self._rows is not None:
            row = self._rows.one("SELECT * FROM api_keys WHERE id = ? AND revoked_at IS NULL",
                                 (key_id,))
            return key_from_mapping(row) if row else None
        query = sa.select(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return key_from_row(row) if row else None

    async def list_keys(self) -> list[ApiKey]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(api_keys).order_by(api_keys.c.created_at))).all()
        return [key_from_row(r) for r in rows]

    async def revoke_key(self, key_or_id: str) -> bool:
        cond = sa.or_(api_keys.c.id == key_or_id, api_keys.c.key_hash == hash_key(key_or_id))
        async with self.engine.begin() as conn:
            result = await conn.execute(
                api_keys.update()
                .where(cond, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=int(time.time()))
            )
        return result.rowcount > 0

    # ---- tasks: API side ----------------------------------------------------------------

    async def insert_task(
        self, task: Task, *, max_concurrent: int | None = None
    ) -> tuple[Task, bool]:
        """Insert a new task and take its hold (`task.hold_micro`), in one transaction.

        With an idempotency key already used, nothing is written and the earlier task is
        returned. Raises InsufficientBalance or ConcurrencyLimitReached, writing nothing.
        Returns (task, created).
        """
        try:
            if self._writer is not None:
                await self._insert_task_sqlite(task, max_concurrent)
            else:
                await self._insert_task_sql(task, max_concurrent)
        except (IntegrityError, sqlite3.IntegrityError):
            if task.idempotency_key is None:
                raise
            existing = await self.find_by_idempotency_key(task.owner_id, task.idempotency_key)
            if existing is None:
                raise
            return existing, False
        return task, True

    async def _insert_task_sql(self, task: Task, max_concurrent: int | None) -> None:
        async with self.engine.begin() as conn:
            if not await ledger_ops.take_hold(conn, task.owner_id, task.id, task.hold_micro):
                raise ledger_ops.InsufficientBalance(task.owner_id)
            if max_concurrent is not None:
                active = (await conn.execute(
                    sa.select(sa.func.count()).select_from(tasks).where(
                        tasks.c.owner_id == task.owner_id, tasks.c.status.in_(ACTIVE),
                        tasks.c.deleted_at.is_(None))
                )).scalar()
                if active >= max_concurrent:
                    raise ConcurrencyLimitReached(active)
            await conn.execute(tasks.insert().values(**_task_values(task)))

    async def _insert_task_sqlite(self, task: Task, max_concurrent: int | None) -> None:
        try:
            await self._writer.insert(_task_values(task), max_concurrent)
        except HoldRefused as exc:
            raise ledger_ops.InsufficientBalance(task.owner_id) from exc
        except TooManyActive as exc:
            raise ConcurrencyLimitReached(exc.active) from exc

    async def find_by_idempotency_key(self, owner_id: str, key: str) -> Task | None:
        query = sa.select(tasks).where(
            tasks.c.owner_id == owner_id, tasks.c.idempotency_key == key
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _row_to_task(row) if row else None

    async def get_task(self, task_id: str, owner_id: str | None = None) -> Task | None:
        """A live (not deleted) task; with owner_id, only if that owner created it."""
        if self._rows is not None:
            return self._get_task_sqlite(task_id, owner_id)
        query = sa.select(tasks).where(tasks.c.id == task_id, tasks.c.deleted_at.is_(None))
        if owner_id is not None:
            query = query.where(tasks.c.owner_id == owner_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _row_to_task(row) if row else None

    def _get_task_sqlite(self, task_id: str, owner_id: str | None) -> Task | None:
        sql = "SELECT * FROM tasks WHERE id = ? AND deleted_at IS NULL"
        params: tuple[str, ...] = (task_id,)
        if owner_id is not None:
            sql += " AND owner_id = ?"
            params += (owner_id,)
        row = self._rows.one(sql, params)
        return _task_from_mapping(row) if row else None

    async def list_tasks(
        self, owner_id: str, *, after: str | None, limit: int, descending: bool
    ) -> tuple[list[Task], bool]:
        query = sa.select(tasks).where(tasks.c.owner_id == owner_id, tasks.c.deleted_at.is_(None))
        async with self.engine.connect() as conn:
            if after:
                seq = (
                    await conn.execute(
                        sa.select(tasks.c.seq).where(
                            tasks.c.id == after, tasks.c.owner_id == owner_id
                        )
                    )
                ).scalar()
                if seq is None:
                    return [], False
                query = query.where(tasks.c.seq < seq if descending else tasks.c.seq > seq)
            order = tasks.c.seq.desc() if descending else tasks.c.seq.asc()
            rows = (await conn.execute(query.order_by(order).limit(limit + 1))).all()
        found = [_row_to_task(r) for r in rows]
        return found[:limit], len(found) > limit

    async def mark_deleted(self, task_id: str, owner_id: str) -> bool:
        now = int(time.time())
        async with self.engine.begin() as conn:
            result = await conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id, tasks.c.owner_id == owner_id,
                       tasks.c.deleted_at.is_(None))
                .values(deleted_at=now, cancel_requested=True, next_poll_at=time.time())
            )
        return result.rowcount > 0

    async def expired_assets(self, now: float, limit: int) -> list[str]:
        """Ids of tasks whose stored assets are past their retention and still present."""
        query = (
            sa.select(tasks.c.id)
            .where(tasks.c.video_key.is_not(None), tasks.c.assets_expire_at < now)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [r[0] for r in (await conn.execute(query)).all()]

    async def clear_assets(self, task_id: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                tasks.update().where(tasks.c.id == task_id).values(
                    video_key=None, thumbnail_key=None, spritesheet_key=None, reference_key=None)
            )

    async def events(self, task_id: str | None = None) -> list[tuple[str, str]]:
        query = sa.select(task_events.c.task_id, task_events.c.kind).order_by(task_events.c.id)
        if task_id:
            query = query.where(task_events.c.task_id == task_id)
        async with self.engine.connect() as conn:
            return [(r[0], r[1]) for r in (await conn.execute(query)).all()]

    # ---- tasks: engine side -------------------------------------------------------------

    async def claim_due(
        self, worker: str, now: float, lease_until: float, limit: int,
        *, submit: bool | None = None,
    ) -> list[Task]:
        """Lease up to `limit` due tasks to `worker`; a task is leased to one worker at a time.

        `submit=True` claims only tasks still waiting for a channel (so the engine can take
        no more than its channels have room for); `submit=False` only the others: bound
        tasks, and waiting ones that must end now (cancelled, past their deadline).
        One conditional UPDATE claims the whole batch; its WHERE decides who won each row.
        """
        lease_free = sa.or_(tasks.c.lease_until.is_(None), tasks.c.lease_until < now)
        cond = [
            tasks.c.status.in_(ACTIVE),
            sa.or_(tasks.c.next_poll_at.is_(None), tasks.c.next_poll_at <= now),
            lease_free,
        ]
        must_end = sa.or_(tasks.c.cancel_requested == sa.true(), tasks.c.deadline_at < now)
        if submit is True:
            cond += [tasks.c.upstream_id.is_(None), sa.not_(must_end)]
        elif submit is False:
            cond.append(sa.or_(tasks.c.upstream_id.is_not(None), must_end))
        due = sa.select(tasks.c.id).where(*cond).order_by(tasks.c.next_poll_at).limit(limit)
        async with self.engine.begin() as conn:
            ids = [r[0] for r in (await conn.execute(due)).all()]
            if not ids:
                return []
            await conn.execute(
                tasks.update()
                .where(tasks.c.id.in_(ids), tasks.c.status.in_(ACTIVE), lease_free)
                .values(lease_owner=worker, lease_until=lease_until,
                        attempts=tasks.c.attempts + 1)
            )
            rows = (await conn.execute(
                sa.select(tasks).where(tasks.c.id.in_(ids), tasks.c.lease_owner == worker,
                                       tasks.c.lease_until == lease_until)
            )).all()
        return [_row_to_task(r) for r in rows]

    async def count_in_flight(self) -> dict[str, int]:
        """Unfinished tasks that an upstream accepted, per channel (for in-flight caps)."""
        query = (
            sa.select(tasks.c.backend, sa.func.count())
            .where(tasks.c.status.in_(ACTIVE), tasks.c.upstream_id.is_not(None))
            .group_by(tasks.c.backend)
        )
        async with self.engine.connect() as conn:
            return {r[0]: r[1] for r in (await conn.execute(query)).all() if r[0]}

    async def renew_leases(self, worker: str, ids: Sequence[str], lease_until: float) -> set[str]:
        """Extend leases still held; returns the ids whose lease this worker lost."""
        if not ids:
            return set()
        async with self.engine.begin() as conn:
            await conn.execute(
                tasks.update()
                .where(tasks.c.id.in_(list(ids)), tasks.c.lease_owner == worker)
                .values(lease_until=lease_until)
            )
            held = (
                await conn.execute(
                    sa.select(tasks.c.id).where(
                        tasks.c.id.in_(list(ids)), tasks.c.lease_owner == worker
                    )
                )
            ).all()
        return set(ids) - {r[0] for r in held}

    async def release_many(self, worker: str, releases: dict[str, dict[str, Any]]) -> None:
        """Hand back many held tasks in one transaction: each gets its next poll time, status
        and progress (never lower than stored); tasks whose lease was lost are untouched."""
        stmt = (
            tasks.update()
            .where(tasks.c.id == sa.bindparam("b_id"), tasks.c.lease_owner == worker)
            .values(
                lease_owner=None, lease_until=None,
                next_poll_at=sa.bindparam("b_next"),
                status=sa.bindparam("b_status"),
                status_updated_at=sa.bindparam("b_updated"),
                progress=sa.case(
                    (tasks.c.progress > sa.bindparam("b_progress"), tasks.c.progress),
                    else_=sa.bindparam("b_progress"),
                ),
            )
        )
        rows = [
            {"b_id": task_id, "b_next": v["next_poll_at"], "b_status": v["status"],
             "b_updated": v["status_updated_at"], "b_progress": v["progress"]}
            for task_id, v in releases.items()
        ]
        async with self.engine.begin() as conn:
            await conn.execute(stmt, rows)

    async def update_leased(self, task_id: str, worker: str, **values: Any) -> bool:
        """Write fields of a task this worker holds; False when the lease was lost."""
        async with self.engine.begin() as conn:
            return await _update_leased(conn, task_id, worker, values)

    async def finish_leased(self, task_id: str, worker: str, event_kind: str,
                            charge_micro: int = 0, **values: Any) -> bool:
        """Move a held task to a terminal state, atomically and once: the event row, the
        settlement of its hold (keeping at most `charge_micro`; nothing on failure) and the
        webhook notification are written in the same transaction."""
        async with self.engine.begin() as conn:
            # a task the client cancelled or deleted must not turn completed afterwards
            only_if_live = event_kind == "completed"
            if not await _update_leased(conn, task_id, worker, values, require_active=True,
                                        require_not_cancelled=only_if_live):
                return False
            await conn.execute(
                task_events.insert().values(
                    task_id=task_id, kind=event_kind, created_at=int(time.time())
                )
            )
            await ledger_ops.settle(conn, task_id, charge_micro if only_if_live else 0,
                                    self.charge_overage)
            await ledger_ops.enqueue_webhook(conn, task_id, f"video.{event_kind}")
        return True

    async def cancel_requested(self, task_id: str) -> bool:
        async with self.engine.connect() as conn:
            value = (
                await conn.execute(
                    sa.select(tasks.c.cancel_requested).where(tasks.c.id == task_id)
                )
            ).scalar()
        return bool(value)


async def _update_leased(
    conn: AsyncConnection, task_id: str, worker: str, values: dict[str, Any],
    require_active: bool = False, require_not_cancelled: bool = False,
) -> bool:
    cond = [tasks.c.id == task_id, tasks.c.lease_owner == worker]
    if require_active:
        cond.append(tasks.c.status.in_(ACTIVE))
    if require_not_cancelled:
        cond.append(tasks.c.cancel_requested == sa.false())
    if "progress" in values:
        # progress never goes down, whatever a backend reports
        new = values["progress"]
        values["progress"] = sa.case((tasks.c.progress > new, tasks.c.progress), else_=new)
    result = await conn.execute(tasks.update().where(*cond).values(**values))
    return result.rowcount > 0


_KEY_FIELDS = [f.name for f in dataclasses.fields(ApiKey)]


def key_from_row(row: Any) -> ApiKey:
    return key_from_mapping(row._mapping)


def key_from_mapping(mapping: Any) -> ApiKey:
    return ApiKey(**{name: mapping[name] for name in _KEY_FIELDS})


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _upgrade(sync_conn: Any) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, "head")
